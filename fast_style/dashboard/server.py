"""Start and stop visdom's server as a child process, offline and only once it really answers.

visdom 0.2.4 flag notes: ``-port``, ``--hostname`` (two dashes; it only changes the printed URL,
``-hostname`` would be eaten by argparse as ``-h``), ``-env_path``, and ``-bind_local`` which is the
only way to make it listen on 127.0.0.1 instead of every interface. So a loopback ``host`` turns on
``-bind_local``; any other host binds all interfaces (visdom cannot bind one specific address).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fast_style.dashboard.assets import install_assets
from fast_style.dashboard.errors import DashboardError

__all__ = ["free_port", "is_loopback", "login_settings", "server_url", "start_server", "stop_server", "wait_until_up",
           "write_cookie_secret"]

LOGIN_VARIABLES = ("VISDOM_USERNAME", "VISDOM_PASSWORD")

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK or host.startswith("127.")


def server_url(host: str, port: int) -> str:
    """``http://host:port``, an IPv6 address in brackets (``http://[::1]:8097``)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it; tiny race until the server binds)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bind_address(host: str) -> str:
    """Where visdom will listen for ``host``: ``-bind_local`` makes it 127.0.0.1 for every loopback
    name (``localhost``, ``::1`` included: visdom 0.2.4 hard-codes the IPv4 address); any other host
    listens on all interfaces (``::``, dual-stack, where IPv6 exists, as tornado does)."""
    if is_loopback(host):
        return "127.0.0.1"
    return "::" if socket.has_ipv6 else ""


def _port_taken(host: str, port: int) -> bool:
    address = _bind_address(host)
    try:
        sock = socket.socket(_family(address), socket.SOCK_STREAM)
    except OSError:  # IPv6 compiled in but off on this machine: all interfaces over IPv4
        address = ""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        # Like tornado: connections of a just-stopped server in TIME_WAIT must not count as "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return True
    return False


def _log_tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.is_file():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def wait_until_up(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers HTTP 200; fail fast (with the server log) if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while True:
        if proc is not None and proc.poll() is not None:
            tail = _log_tail(getattr(proc, "log_path", None))
            raise DashboardError(
                f"visdom server exited with code {proc.returncode} before answering on {url}"
                + (f"; log: {tail}" if tail else "")
            )
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                if resp.status == 200:
                    return
                last_error = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            tail = _log_tail(getattr(proc, "log_path", None)) if proc is not None else ""
            raise DashboardError(
                f"visdom server did not answer on {url} within {timeout:.0f} s ({last_error})"
                + (f"; log: {tail}" if tail else "")
            )
        time.sleep(0.1)


def login_settings(
    host: str, extra_args: Sequence[str], environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Extra visdom flags and environment for its login, or a DashboardError for an open server.

    A host other than loopback makes visdom listen on every interface, serving every run's
    losses and images to whoever can reach the port, so it is refused unless ``VISDOM_USERNAME``
    and ``VISDOM_PASSWORD`` are set; visdom's own login (``-enable_login``, credentials read from
    those variables) is then turned on. visdom keeps its cookie secret in ``~/.visdom/COOKIE_SECRET``;
    when that file is missing, a random one is made (``VISDOM_COOKIE``, unless the user set it).
    """
    have_credentials = all(environ.get(name) for name in LOGIN_VARIABLES)
    wants_login = "-enable_login" in extra_args or not is_loopback(host)
    if not wants_login:
        return [], {}
    if not have_credentials:
        if not is_loopback(host):
            raise DashboardError(
                f"host={host} would serve every run's losses and images to the network without a login; set "
                "VISDOM_USERNAME and VISDOM_PASSWORD in the environment (visdom's login is then on), or keep "
                "host=127.0.0.1 and tunnel: ssh -L 8097:localhost:8097 <this machine>"
            )
        raise DashboardError("extra_args=[-enable_login] needs VISDOM_USERNAME and VISDOM_PASSWORD in the environment")
    env = {"VISDOM_USE_ENV_CREDENTIALS": "1"}
    if not environ.get("VISDOM_COOKIE"):
        env["VISDOM_COOKIE"] = secrets.token_hex(32)
    return ([] if "-enable_login" in extra_args else ["-enable_login"]), env


def write_cookie_secret(folder: Path, secret: str) -> None:
    """Create visdom's ``COOKIE_SECRET`` in ``folder`` (``~/.visdom``) readable by its owner only,
    unless it exists. visdom would write it itself with a plain ``open()`` (0644 under the usual
    umask): whoever reads it can forge a login cookie, so it is made here first, 0600, in a
    0700 folder; visdom then finds it and leaves it alone."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(folder / "COOKIE_SECRET", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # the user's (or an earlier run's) secret: kept, as visdom keeps it
    except OSError as exc:
        raise DashboardError(f"cannot create {folder / 'COOKIE_SECRET'} ({exc.strerror or exc})") from None
    with os.fdopen(fd, "w") as f:
        f.write(secret)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies, however it dies
    (SIGKILL included, which no handler of ours can see): Linux's PR_SET_PDEATHSIG. None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def start_server(
    host: str = "127.0.0.1",
    port: int = 8097,
    env_path: str | os.PathLike | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 60.0,
    log_path: str | os.PathLike | None = None,
) -> subprocess.Popen:
    """Start ``python -m visdom.server`` and return once its page answers.

    The child runs in its own session so a Ctrl-C in the terminal reaches only our entry point,
    which then stops the server deliberately (no half-dead server printing tracebacks). Its output
    goes to a log file (``<env_path>/visdom.log`` by default), not a pipe nobody reads, which
    would eventually block the server. The log path is kept on the returned object as ``log_path``.
    On Linux the server also dies with this process, even if it is SIGKILLed (so it never keeps
    holding the port). A non-loopback ``host`` needs a login (:func:`login_settings`).
    """
    login_args, login_env = login_settings(host, [str(a) for a in extra_args], os.environ)
    install_assets()  # no-op when installed; otherwise visdom would try the CDNs and crash offline
    _check_port(host, port)
    env_dir = _make_env_dir(env_path)
    cmd = _server_command(host, port, env_dir, [str(arg) for arg in extra_args] + login_args)
    if login_env:
        secret = login_env.get("VISDOM_COOKIE") or os.environ["VISDOM_COOKIE"]
        write_cookie_secret(Path.home() / ".visdom", secret)  # where visdom looks for it
    if log_path is None:
        log_path = env_dir / "visdom.log" if env_dir is not None else Path(tempfile.gettempdir()) / f"visdom-{port}.log"
    log_path = Path(log_path)
    proc = _launch(cmd, log_path, login_env)
    proc.log_path = log_path  # type: ignore[attr-defined]
    try:
        wait_until_up(server_url("127.0.0.1" if is_loopback(host) or host == "0.0.0.0" else host, port), timeout, proc)
    except BaseException:
        stop_server(proc)
        raise
    return proc


def _check_port(host: str, port: int) -> None:
    """A valid port that nothing listens on yet (one line otherwise, before anything starts)."""
    if not 0 < int(port) < 65536:
        raise DashboardError(f"port must be in 1..65535, got {port}")
    if _port_taken(host, port):
        raise DashboardError(
            f"port {port} on {host} is already in use (another visdom?); stop it or choose another port"
        )


def _make_env_dir(env_path: str | os.PathLike | None) -> Path | None:
    """``env_path`` made absolute and created (None: visdom's own default folder)."""
    if env_path is None:
        return None
    env_dir = Path(env_path).expanduser().resolve()
    try:
        env_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DashboardError(f"cannot create env_path {env_dir} ({exc.strerror or exc})") from exc
    return env_dir


def _server_command(host: str, port: int, env_dir: Path | None, extra_args: list[str]) -> list[str]:
    """The visdom server's command line (flags: module docstring)."""
    cmd = [sys.executable, "-m", "visdom.server", "-port", str(port), "--hostname", host]
    if env_dir is not None:
        # visdom joins file names onto env_path with string concatenation in places.
        cmd += ["-env_path", str(env_dir) + os.sep]
    if is_loopback(host):
        cmd.append("-bind_local")
    return cmd + extra_args


def _launch(cmd: list[str], log_path: Path, login_env: Mapping[str, str]) -> subprocess.Popen:
    """``cmd`` started in its own session, its output appended to ``log_path``."""
    try:
        log_file = open(log_path, "ab")
    except OSError as exc:  # a folder named visdom.log, a read-only env_path, ...
        raise DashboardError(f"cannot write the server log {log_path} ({exc.strerror or exc}); "
                             "choose another env_path") from None
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
            env={**os.environ, **login_env},
        )
    except OSError as exc:
        raise DashboardError(f"cannot start the visdom server ({exc})") from exc
    finally:
        log_file.close()  # the child holds its own descriptor


def stop_server(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; safe to call twice or on a dead process."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout)
