"""Atomic file writes: the one mechanism behind checkpoints, images and downloads."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

# A temp file whose writer is not on this host (a shared folder) is only judged by its age.
STALE_AFTER_S = 3600.0
_umask_lock = threading.Lock()


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
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only once it is completely written and synced.

    Temp file in the same folder, fsync, rename, fsync the folder: a process killed at any instant
    leaves the old file or the new one, never a torn one; an error (disk full, Ctrl-C) before the
    rename removes the temp file and leaves the old file untouched. A killed writer's temp file
    is removed by the next write of the same file (:func:`remove_stale_temps`). The file gets the
    mode of the one it replaces, or the umask's (not mkstemp's 0o600).
    """
    path = Path(path)
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
