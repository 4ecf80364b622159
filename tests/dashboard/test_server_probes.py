"""Issue 25's probes of the dashboard launcher: an IPv6 loopback host, a log that cannot be
written, and visdom's cookie secret (which visdom itself would create world-readable)."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

import fast_style.dashboard.server as server
from fast_style.dashboard import DashboardError, free_port
from fast_style.dashboard.server import _port_taken, server_url, start_server, write_cookie_secret


def test_ipv6_loopback_host_checks_the_port_visdom_will_bind():
    port = free_port()
    assert not _port_taken("::1", port)  # was always "in use": an IPv4 socket cannot bind ::1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", port))  # -bind_local: visdom listens here for every loopback name
        busy.listen()
        assert _port_taken("::1", port) and _port_taken("localhost", port)
    assert server_url("::1", 8097) == "http://[::1]:8097" and server_url("localhost", 1) == "http://localhost:1"


def test_cookie_secret_is_private(tmp_path):
    folder = tmp_path / ".visdom"
    write_cookie_secret(folder, "s3cret")
    secret = folder / "COOKIE_SECRET"
    assert secret.read_text() == "s3cret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    write_cookie_secret(folder, "other")  # an existing secret is the user's: kept
    assert secret.read_text() == "s3cret"


def test_unwritable_server_log_is_one_line_and_the_login_secret_private(tmp_path, monkeypatch):
    monkeypatch.setattr(server, "install_assets", lambda: None)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    monkeypatch.setenv("VISDOM_USERNAME", "u")
    monkeypatch.setenv("VISDOM_PASSWORD", "p")
    monkeypatch.delenv("VISDOM_COOKIE", raising=False)
    env = tmp_path / "env"
    (env / "visdom.log").mkdir(parents=True)  # a folder where the log goes
    with pytest.raises(DashboardError, match="cannot write the server log") as info:
        start_server(port=free_port(), env_path=env, extra_args=["-enable_login"], timeout=5)
    assert "\n" not in str(info.value)
    secret = tmp_path / "home" / ".visdom" / "COOKIE_SECRET"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text()) == 64
