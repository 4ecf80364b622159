"""A real visdom server (offline assets from our installer) shared by the dashboard tests."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest

from fast_style.dashboard import free_port, install_assets, start_server, stop_server


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
