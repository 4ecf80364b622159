"""scripts/dashboard.py: serves until Ctrl-C, then stops visdom and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from fast_style.dashboard import free_port, wait_until_up
from tests.helpers import REPO

from .conftest import wait_for


def port_answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.slow  # a script in a subprocess
def test_dashboard_script_serves_until_ctrl_c(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    log = tmp_path / "dashboard.out"
    with open(log, "w") as out_file:
        proc = subprocess.Popen(
            [sys.executable, "scripts/dashboard.py", f"port={port}", f"env_path={tmp_path / 'envs'}"],
            cwd=REPO,
            env=env,
            stdout=out_file,
            stderr=subprocess.STDOUT,
        )
    try:
        # What a user does: wait for the printed URL, open it, then press Ctrl-C.
        assert wait_for(lambda: f"http://localhost:{port}" in log.read_text() or proc.poll() is not None, 60)
        wait_until_up(f"http://127.0.0.1:{port}/", timeout=10)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text()
    assert proc.returncode == 0, out
    assert f"http://localhost:{port}" in out and "stopping visdom dashboard" in out
    assert wait_for(lambda: not port_answers(port), timeout=5), "visdom server still running after Ctrl-C"
    assert not (REPO / "outputs").exists() or not any((REPO / "outputs").glob("**/.hydra"))
