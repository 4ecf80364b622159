"""Files written by fast-style (issue 14, findings 4 and 5): modes follow the umask, stale temp files
of a killed save are removed, checkpoint-load errors never advise ``weights_only=False``."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest
import torch

from fast_style.checkpoint import load_checkpoint, save_checkpoint
from fast_style.errors import CheckpointError
from fast_style.fileio import atomic_write
from fast_style.images import save_image
from fast_style.train import train
from tests.helpers import good_photos, tiny_config


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_follow_the_umask(tmp_path, umask_022):
    ckpt = save_checkpoint({"model_config": {}, "model": {}}, tmp_path / "a.pt")
    img = save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    assert mode(ckpt) == 0o644 and mode(img) == 0o644
    os.umask(0o077)
    assert mode(save_image(torch.rand(3, 8, 8), tmp_path / "b.png")) == 0o600


def test_replacing_a_file_keeps_its_mode(tmp_path, umask_022):
    path = tmp_path / "a.png"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    save_image(torch.rand(3, 8, 8), path)
    assert mode(path) == 0o640


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_a_killed_save_are_removed(tmp_path):
    host = socket.gethostname()
    stale = tmp_path / f".last.pt.{host}.{dead_pid()}.x1y2z3.tmp"  # SIGKILL in the middle of a save
    live = tmp_path / f".last.pt.{host}.{os.getppid()}.a1b2c3.tmp"  # another process writing right now
    old_style = tmp_path / ".last.pt.q9w8e7r6.tmp"  # name of fast-style before pids were in it
    other = tmp_path / f".other.pt.{host}.{dead_pid()}.k2k2k2.tmp"  # another file's: not ours to judge
    for p in (stale, live, old_style, other):
        p.write_bytes(b"x" * 100)
    os.utime(old_style, (1, 1))  # 1970: certainly abandoned
    save_checkpoint({"model_config": {}, "model": {}}, tmp_path / "last.pt")
    assert not stale.exists() and not old_style.exists()
    assert live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".last.pt")) == [live.name]


def test_temp_names_carry_host_and_pid(tmp_path):
    seen = []
    with atomic_write(tmp_path / "x.bin") as f:
        seen = [p.name for p in tmp_path.iterdir()]
        f.write(b"1")
    assert len(seen) == 1 and seen[0].startswith(f".x.bin.{socket.gethostname()}.{os.getpid()}.")


@pytest.mark.slow
def test_resume_removes_the_stale_temp_next_to_its_checkpoint(tmp_path):
    photos = good_photos(tmp_path / "photos")
    cfg = tiny_config(tmp_path, photos, steps=2)
    train(cfg)
    last = tmp_path / "runs" / "starry_night-1" / "checkpoints" / "last.pt"
    stale = last.parent / f".last.pt.{socket.gethostname()}.{dead_pid()}.zzzzzz.tmp"
    stale.write_bytes(b"x" * 1000)
    cfg = tiny_config(tmp_path, photos, steps=3)
    cfg.run_dir = str(tmp_path / "runs" / "starry_night-2")
    cfg.resume = str(last)
    train(cfg)
    assert not stale.exists()


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_error_does_not_advise_unsafe_loading(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "fast-style-checkpoint", "x": Evil()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "weights_only" not in message and "\n" not in message
    assert "pickled" in message
