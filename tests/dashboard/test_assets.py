"""The npm-based installer leaves visdom able to start with no network at all."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fast_style.dashboard import DashboardError, assets_installed, install_assets, static_dir
from fast_style.dashboard.assets import ASSETS, marker_path
from tests.helpers import REPO


@pytest.fixture(scope="module", autouse=True)
def installed() -> Path:
    return install_assets()


def test_visdom_build_step_finds_everything_and_downloads_nothing(monkeypatch) -> None:
    """Run visdom's own download_scripts with every network path replaced by a recorder."""
    import requests
    import visdom
    from visdom.server import build

    fetched: list[str] = []

    class Opener:
        def open(self, req, *args, **kwargs):
            fetched.append(getattr(req, "full_url", str(req)))
            raise build.URLError("offline")

    def fake_get(url, *args, **kwargs):
        fetched.append(url)
        raise requests.ConnectionError("offline")

    monkeypatch.setattr(build.request, "build_opener", lambda *a: Opener())
    monkeypatch.setattr(build.request, "install_opener", lambda opener: None)
    monkeypatch.setattr(requests, "get", fake_get)
    build.download_scripts()
    assert fetched == []
    assert marker_path().read_text().strip() == visdom.__version__
    assert assets_installed()


def test_every_page_reference_is_served_locally() -> None:
    static = static_dir()
    html = (static / "index.html").read_text()
    refs = re.findall(r"static_url\(\s*[\"']([^\"']+)[\"']\s*\)", html)
    assert refs, "index.html format changed"
    missing = [ref for ref in refs if not ref.startswith("../") and not (static / ref).is_file()]
    assert missing == []
    for _, _, target in ASSETS:
        assert (static / target).stat().st_size > 0, target


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DashboardError, match=r"npm not found on PATH.*install-assets") as info:
        install_assets(force=True, static=tmp_path / "static")
    assert "\n" not in str(info.value)
    assert not marker_path(tmp_path / "static").exists()


def test_unreachable_registry_is_a_clear_error(tmp_path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "npm"
    fake.write_text(
        "#!/bin/sh\necho 'npm error code ECONNREFUSED' >&2\n"
        "echo 'npm error request to https://registry.npmjs.org/jquery failed' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(DashboardError, match=r"npm could not fetch .*ECONNREFUSED.*registry is reachable") as info:
        install_assets(force=True, static=tmp_path / "static")
    assert "\n" not in str(info.value)


def run_cli(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "fast_style.dashboard", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.slow  # a script in a subprocess
def test_cli_is_idempotent_and_fails_in_one_line(tmp_path) -> None:
    done = run_cli("install-assets")
    assert done.returncode == 0, done.stderr
    assert "already installed" in done.stdout
    failed = run_cli("install-assets", "--force", path=str(tmp_path))
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: npm not found"), failed.stderr
    assert assets_installed()  # a failed forced run leaves the working install alone


@pytest.mark.slow
def test_fresh_install_from_npm_into_empty_folder(tmp_path) -> None:
    """The real download path (npm pack + extraction), into a scratch folder."""
    static = tmp_path / "static"
    assert not assets_installed(static)
    assert install_assets(force=True, static=static) == static
    assert assets_installed(static)
    assert (static / "js" / "plotly-plotly.min.js").read_bytes().startswith(b"/**")
