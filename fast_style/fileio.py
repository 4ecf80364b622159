"""Atomic file writes: the one mechanism behind checkpoints, images and downloads; and the
file-system rules every writer shares (names read from files, the shipped networks, the cache)."""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from fast_style.errors import ConfigError

log = logging.getLogger(__name__)

# A temp file whose writer is not on this host (a shared folder) is only judged by its age.
STALE_AFTER_S = 3600.0
_umask_lock = threading.Lock()
# The networks shipped with the package (fast_style/pretrained): read by ``ckpt=<name>``, written
# by nothing but :func:`fast_style.checkpoint.ship_network` (a developer adding one).
SHIPPED_DIR = Path(__file__).resolve().parent / "pretrained"
MAX_NAME_CHARS = 100
_UNSAFE = re.compile(r"[^\w.+=-]")  # \w is Unicode-aware: accented names stay readable
_temp_cache_noted = False


def safe_name(text: object, fallback: str = "style") -> str:
    """``text`` (a name read from a file: a checkpoint's style) made safe to become part of a file
    name: every character but letters, digits and ``. _ + = -`` becomes ``_`` (so no ``/``, no
    control character), leading dots and underscores go (no ``..``, no hidden file), at most
    :data:`MAX_NAME_CHARS`; ``fallback`` when nothing is left.

    Why one function: a checkpoint is data from anywhere, and ``weights_only`` stops code, not a
    style named ``/../../../victim`` from steering an output path outside its folder. Every name
    that comes from a file goes through here before it is joined onto a path."""
    name = _UNSAFE.sub("_", str(text)).lstrip("._")[:MAX_NAME_CHARS].rstrip(".")
    return name or fallback


def is_shipped(path: str | os.PathLike) -> bool:
    """Whether ``path`` (symlinks resolved) is inside the package's shipped networks folder."""
    resolved = Path(path).expanduser().resolve()
    return resolved == SHIPPED_DIR or SHIPPED_DIR in resolved.parents


def check_not_shipped(path: str | os.PathLike, key: str = "output") -> None:
    """Refuse to write into ``fast_style/pretrained``: stylize, export and evaluate load those
    files by name, and a replaced one breaks every ``ckpt=<name>`` of this installation."""
    if is_shipped(path):
        raise ConfigError(f"{key}={path} is in the folder of the networks shipped with fast-style "
                          f"({SHIPPED_DIR}), which nothing writes; choose another output")


def read_regular_file(path: str | os.PathLike) -> bytes:
    """The bytes of ``path`` if it is a regular file; OSError otherwise.

    Opened non-blocking and checked on the open descriptor (no race between a check and the
    open): a FIFO planted where a cache entry should be would otherwise block the reader forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def cache_root() -> Path:
    """fast-style's cache folder (exported networks, downloaded paintings): ``$FAST_STYLE_CACHE``,
    else ``$XDG_CACHE_HOME/fast_style``, else ``~/.cache/fast_style``.

    Without a usable home (``HOME`` empty or relative, as in some containers and services) the
    home-based default would land in ``/.cache`` or the working folder: a per-user folder under
    the temp dir is used instead, said once in a warning line."""
    explicit = os.environ.get("FAST_STYLE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is to be ignored
        return Path(xdg) / "fast_style"
    home = os.environ.get("HOME")
    if home is None:
        with suppress(KeyError, ImportError):
            import pwd

            home = pwd.getpwuid(os.getuid()).pw_dir
    if home and Path(home).is_absolute() and Path(home) != Path("/"):
        return Path(home) / ".cache" / "fast_style"
    global _temp_cache_noted
    temp = Path(tempfile.gettempdir()) / f"fast_style-cache-{os.getuid()}"
    if not _temp_cache_noted:
        _temp_cache_noted = True
        log.warning("no usable home folder (HOME=%r): caching in %s for now (set FAST_STYLE_CACHE to keep it)",
                    home, temp)
    return temp


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc), since
    ``os.umask`` can only be read by setting it, which races with other threads creating files."""
    with suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _temp_prefix(name: str) -> str:
    # host and pid in the name, so a later save can tell a dead writer's leftover from a live write
    return f".{name}.{socket.gethostname()}.{os.getpid()}."


def _writer_is_gone(host: str, pid: str) -> bool:
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False  # ours: another thread of this process may be writing it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, owned by someone else
    return False


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temp files left next to ``path`` by an earlier write that was killed (SIGKILL, power
    loss) before it could clean up; returns what was removed.

    Only temps of this very file name are considered, and only if their writer is certainly gone:
    a dead process on this host (from the name), or, for a name without host and pid (older
    fast-style) or from another host, untouched for :data:`STALE_AFTER_S`.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    head = f".{path.name}."
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        middle = temp.name[len(head) : -len(".tmp")]
        parts = middle.rsplit(".", 2)  # host may contain dots; pid and mkstemp's suffix do not
        try:
            gone = (len(parts) == 3 and _writer_is_gone(parts[0], parts[1])) or (
                time.time() - temp.stat().st_mtime > STALE_AFTER_S
            )
            if gone:
                temp.unlink()
                removed.append(temp)
        except OSError:
            continue  # vanished meanwhile, or not ours to remove
    return removed


def _target_mode(path: Path) -> int:
    """Keep the mode of the file being replaced; a new file gets what ``open()`` would give it
    (0o666 minus the umask), not mkstemp's private 0o600."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be created in it, before any long work
    whose results would go there; raises OSError (read-only, permissions, a file in the way)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=_temp_prefix("write-check"), suffix=".tmp", dir=folder)
    os.close(fd)
    os.unlink(probe)
    return folder


@contextmanager
def atomic_write(path: str | os.PathLike, allow_shipped: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only once it is completely written and synced.

    Temp file in the same folder, fsync, rename, fsync the folder: a process killed at any instant
    leaves the old file or the new one, never a torn one; an error (disk full, Ctrl-C) before the
    rename removes the temp file and leaves the old file untouched. A killed writer's temp file
    is removed by the next write of the same file (:func:`remove_stale_temps`). The file gets the
    mode of the one it replaces, or the umask's (not mkstemp's 0o600). The shipped networks are
    refused here, in the one write path (:func:`check_not_shipped`), unless ``allow_shipped``.
    """
    path = Path(path)
    if not allow_shipped:
        check_not_shipped(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _target_mode(path))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder; the rename is still atomic
