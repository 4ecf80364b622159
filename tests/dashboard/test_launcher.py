"""The dashboard launcher (issue 14, finding 6 and the leftover server of finding 5): a non-loopback
host needs visdom's login, and the visdom server never outlives the launcher, even a SIGKILLed one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from fast_style.dashboard import DashboardError, free_port, start_server, stop_server, wait_until_up
from fast_style.dashboard.server import login_settings
from tests.helpers import REPO

from .conftest import wait_for
from .test_script import port_answers


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISDOM_")}
    return {**env, "PYTHONPATH": str(REPO), **extra}


@pytest.mark.slow  # a script in a subprocess
def test_open_host_without_credentials_is_refused_in_one_line(tmp_path):
    port = free_port()
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "dashboard.py"), "host=0.0.0.0", f"port={port}",
         f"env_path={tmp_path}"], capture_output=True, text=True, timeout=60, env=script_env(), cwd=tmp_path,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "VISDOM_USERNAME" in result.stderr and "without a login" in result.stderr
    assert not port_answers(port)


def test_login_settings():
    assert login_settings("127.0.0.1", [], {}) == ([], {})
    with pytest.raises(DashboardError, match="VISDOM_PASSWORD"):
        login_settings("0.0.0.0", [], {"VISDOM_USERNAME": "me"})
    flags, env = login_settings("0.0.0.0", [], {"VISDOM_USERNAME": "me", "VISDOM_PASSWORD": "pw"})
    assert flags == ["-enable_login"] and env["VISDOM_USE_ENV_CREDENTIALS"] == "1" and len(env["VISDOM_COOKIE"]) == 64


@pytest.mark.slow
def test_open_host_with_credentials_asks_for_a_login(tmp_path, monkeypatch):
    monkeypatch.setenv("VISDOM_USERNAME", "me")
    monkeypatch.setenv("VISDOM_PASSWORD", "secret")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # visdom keeps its cookie secret in ~/.visdom
    port = free_port()
    proc = start_server(host="0.0.0.0", port=port, env_path=tmp_path / "envs", timeout=60)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            page = resp.read().decode(errors="replace").lower()
        assert 'type="password"' in page or "type='password'" in page, page[:500]
    finally:
        stop_server(proc)


@pytest.mark.slow  # a script in a subprocess
def test_server_dies_with_a_killed_launcher(tmp_path):
    port = free_port()
    log = tmp_path / "dashboard.out"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "dashboard.py"), f"port={port}", f"env_path={tmp_path / 'envs'}"],
            cwd=tmp_path, env=script_env(), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for(lambda: f"http://localhost:{port}" in log.read_text() or proc.poll() is not None, 60)
        wait_until_up(f"http://127.0.0.1:{port}/", timeout=10)
        proc.send_signal(signal.SIGKILL)  # no handler runs: only the kernel can tell the server
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_for(lambda: not port_answers(port), timeout=10), "visdom server outlived its launcher"
