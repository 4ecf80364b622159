"""Killing training: SIGKILL at random instants never leaves an unloadable last.pt; SIGTERM finishes
the step, checkpoints, exits 0 and prints a resume command that continues the run. Real
scripts/train.py subprocesses at tiny sizes with a random-init VGG (see helpers)."""

from __future__ import annotations

import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from fast_style.checkpoint import load_checkpoint
from tests.helpers import REPO, good_photos, script_env, style_file, tiny_train_args


def start_training(tmp_path: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    photos = good_photos(tmp_path / "photos")
    style = style_file(tmp_path / "style")
    return subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "train.py"), *tiny_train_args(photos, style, steps=100000),
         f"ckpt_out={tmp_path}/final.pt", f"hydra.run.dir={run_dir}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=script_env(),
    )


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not predicate():
        time.sleep(0.05)
    assert predicate(), "timed out"


def test_sigkill_at_random_points_always_leaves_a_loadable_checkpoint(tmp_path):
    """5 kills at seeded random delays while a checkpoint is written every step; every run after
    the first resumes from what the previous kill left."""
    rng = random.Random(1234)
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.pt"
    steps_seen = []
    for kill in range(5):
        extra = ["trainer.ckpt_every=1"] + ([f"resume={last}"] if last.exists() else [])
        proc = start_training(tmp_path, run_dir, *extra)
        previous = load_checkpoint(last)["step"] if last.exists() else 0
        wait_for(lambda: last.exists() and load_checkpoint(last)["step"] > previous)
        time.sleep(rng.uniform(0.0, 0.5))  # somewhere in a step, a torch.save, a rename...
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        state = load_checkpoint(last)  # never torn
        steps_seen.append(state["step"])
        assert state["step"] > previous, (kill, steps_seen)
    assert steps_seen == sorted(steps_seen)


def test_sigterm_checkpoints_and_the_printed_command_resumes(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_training(tmp_path, run_dir, "trainer.ckpt_every=1000")
    log = run_dir / "train.log"
    wait_for(lambda: log.exists() and "step 2 " in log.read_text())
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing this step" in err
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    stopped = state["step"]
    assert f"stopped at step {stopped}" in out and not (tmp_path / "final.pt").exists()
    command = shlex.split(out.split("resume with:")[1].strip().splitlines()[0])
    assert command[-1] == f"resume={run_dir / 'checkpoints' / 'last.pt'}"
    # the printed command, with a finite number of steps so that it ends
    command = [f"trainer.steps={stopped + 2}" if a.startswith("trainer.steps=") else a for a in command]
    command.append(f"hydra.run.dir={tmp_path / 'resumed'}")  # a new run dir, but not inside the repo
    # run from another folder: the printed command names the script by its absolute path
    resumed = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=script_env(), timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert f"saved {tmp_path}/final.pt (step {stopped + 2})" in resumed.stdout
    resumed_log = (tmp_path / "resumed" / "train.log").read_text()
    assert f"resuming from {run_dir / 'checkpoints' / 'last.pt'} at step {stopped}" in resumed_log
