"""A real visdom server (offline assets from our installer) and a headless Chromium, shared by the
dashboard tests."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest

from fast_style.dashboard import free_port, install_assets, start_server, stop_server
from tests.helpers import REPO

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@dataclass
class Server:
    port: int
    proc: Popen
    env_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def read_env(port: int, env: str, timeout: float = 2.0) -> dict:
    """All windows of ``env`` as the server holds them (visdom's POST /win_data with win=None)."""
    body = json.dumps({"eid": env, "win": None}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/win_data", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def traces(window: dict) -> dict[str, dict]:
    """Plot window -> {trace name: trace dict with x and y}."""
    return {trace["name"]: trace for trace in window["content"]["data"]}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # server not ready / window not there yet
            pass
        time.sleep(interval)
    return False


@pytest.fixture(scope="session")
def visdom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    install_assets()  # no-op when the install script already ran it
    env_path = tmp_path_factory.mktemp("visdom-env")
    port = free_port()
    proc = start_server(port=port, env_path=env_path, timeout=60)
    try:
        yield Server(port=port, proc=proc, env_path=env_path)
    finally:
        stop_server(proc)


@pytest.fixture
def env_reader() -> Callable[[int, str], dict]:
    return read_env


# ----------------------------------------------------------------------------- browser helpers
@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    """Headless Debian Chromium through selenium, console log captured; skips when not installed."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e .[dev])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1400,1250", f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def legend_names(driver) -> set[str]:
    """Trace names in the legends of every plotly plot on the page."""
    return set(driver.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot .legendtext')).map(e => e.textContent)"
    ))


def loaded_images(driver) -> int:
    """How many inline (data:) images on the page have finished decoding."""
    return driver.execute_script(
        "return Array.from(document.images).filter("
        "i => i.src.startsWith('data:image') && i.complete && i.naturalWidth > 0).length"
    )


def severe_console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def save_screenshot(driver, name: str, update_docs: bool = False) -> Path:
    """``test-artifacts/<name>``; also ``docs/dashboard.png`` if ``update_docs`` and FAST_STYLE_UPDATE_DOCS=1."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    if update_docs and os.environ.get("FAST_STYLE_UPDATE_DOCS") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(path, REPO / "docs" / "dashboard.png")
    return path
