"""Data-parallel training for real: two processes with the gloo backend on the CPU, started by
hand with torchrun's environment variables and by torchrun (``python -m torch.distributed.run``).

Tiny runs (64 px, an 8-channel net, seeded random-init VGG16): they check the mechanics of DDP —
identical replicas, the same result as one process with the same global batch, rank-0-only files,
stop and resume — not image quality.

Comparing weights after Adam (see :func:`compare`): some parameters have a gradient that is exactly
zero in exact arithmetic (the bias of every conv that feeds an instance norm, whose mean
subtraction cancels it). In floating point their gradient is rounding noise, and Adam divides it
by its own magnitude, so they drift by O(lr) in any two runs whose sums are ordered differently
(one process with 1 or 2 threads does it too). They change nothing downstream; they are found
numerically (float64) and left out.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_style.checkpoint import load_checkpoint
from fast_style.config import train_config_from_dict
from fast_style.loggers import NullLogger
from fast_style.models import ImageTransformNet, TransformerConfig
from fast_style.train import train
from tests.helpers import REPO, TINY_RUNS_IN_FP32, TINY_RUNS_STAY_EAGER

TOL = 1e-4

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="needs torch.distributed with gloo",
)


def make_photos(folder: Path, n: int = 12) -> Path:
    """Noise photos of varied sizes, all larger than the 64 px crop."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = 72 + 4 * i, 96 - 2 * i
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"p{i:02d}.jpg")
    return folder


def make_style(path: Path) -> Path:
    Image.effect_mandelbrot((64, 48), (-2, -1.5, 1, 1.5), 30).convert("RGB").save(path)
    return path


def tiny_args(tmp: Path, steps: int) -> list[str]:
    photos = tmp / "photos" if (tmp / "photos").exists() else make_photos(tmp / "photos")
    style = tmp / "style.png" if (tmp / "style.png").exists() else make_style(tmp / "style.png")
    return [
        f"style.image={style}", "style.size=48", f"data.root={photos}", f"data.val_root={photos}",
        "data.image_size=64", "data.batch_size=4", "data.workers=0", "data.n_samples=2", "data.n_val=2",
        "model.width=8", "model.n_residual=1", "loss_net.weights=random", f"trainer.steps={steps}",
        "trainer.lr=1e-4", "trainer.log_every=1", "trainer.sample_every=2", "trainer.val_every=2",
        "trainer.ckpt_every=2", "logger=none", "device=cpu", TINY_RUNS_STAY_EAGER, TINY_RUNS_IN_FP32,
    ]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    return {**base, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def torchrun(args: list[str], cwd: Path, log_dir: Path, script: Path = REPO / "scripts" / "train.py",
             **extra_env: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        f"--log-dir={log_dir}", "--redirects=3", str(script), *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env(**extra_env), timeout=300)


def rank_output(log_dir: Path, rank: int, stream: str) -> str:
    (path,) = log_dir.glob(f"*/attempt_0/{rank}/{stream}.log")
    return path.read_text()


def logged_losses(train_log: Path) -> dict[int, list[float]]:
    """step -> [content, style, tv, total] from a train.log."""
    out = {}
    for m in re.finditer(r"\] step (\d+)  content (\S+)  style (\S+)  tv (\S+)  total (\S+)", train_log.read_text()):
        out[int(m.group(1))] = [float(v) for v in m.groups()[1:]]
    return out


def zero_gradient_params(model_config: dict) -> set[str]:
    """Parameters whose gradient is identically zero (conv biases cancelled by an instance norm),
    found in float64 where rounding noise is ~1e-16 of the real gradients."""
    torch.manual_seed(0)
    net = ImageTransformNet(TransformerConfig(**model_config)).double()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    (net(x) * torch.randn(2, 3, 32, 32, dtype=torch.float64)).sum().backward()
    scale = max(p.grad.abs().max().item() for p in net.parameters())
    return {n for n, p in net.named_parameters() if p.grad.abs().max().item() < 1e-9 * scale}


def compare(ddp: dict[str, torch.Tensor], single: dict[str, torch.Tensor], start: dict[str, torch.Tensor],
            model_config: dict) -> None:
    """Same weights up to rounding. Max |dw| is printed (the number asked for) but not asserted:
    Adam normalises every gradient element by its own magnitude, so an element whose gradient
    crosses zero moves by ~±lr on rounding noise alone (one process with 1 or 2 threads does the
    same). The assertion is on the whole update, w_end - w_start, of the parameters that have a
    gradient: a different batch or a missed step changes it by O(1), rounding by far less."""
    zero = zero_gradient_params(model_config)
    assert zero and all(name.endswith("bias") for name in zero)
    keys = [k for k in ddp if k not in zero]
    worst = max((ddp[k] - single[k]).abs().max().item() for k in keys)
    drift = max((ddp[k] - single[k]).abs().max().item() for k in zero)
    update_ddp = torch.cat([(ddp[k] - start[k]).flatten() for k in keys])
    update_single = torch.cat([(single[k] - start[k]).flatten() for k in keys])
    rel = ((update_ddp - update_single).norm() / update_single.norm()).item()
    n_off = int(((update_ddp - update_single).abs() > TOL).sum())
    print(f"\nDDP (2 x gloo) vs one process: max |dw| {worst:.2e}, {n_off} of {update_ddp.numel()} elements "
          f"off by > {TOL:g}, relative update difference {rel:.2e}; zero-gradient biases {drift:.2e}")
    assert rel < 0.05 and n_off <= update_ddp.numel() // 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a script in a subprocess
def test_ddp_stop_resume_and_one_process_equivalence(tmp_path):
    """Two ranks started by hand with torchrun's variables; SIGTERM to rank 1 only (torchrun
    forwards a Ctrl-C/SIGTERM to every worker; one rank is the harder case: rank 0 learns of it
    through the per-step all-reduce). Then the printed torchrun command resumes the job in a fresh
    working directory, where only rank 0 writes, and the result matches one process with the same
    global batch trained straight through."""
    first = tmp_path / "first"
    first.mkdir()
    run_dir = first / "run"
    args = [*tiny_args(tmp_path, steps=100000), f"hydra.run.dir={run_dir}"]
    port = str(free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "train.py"), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=first,
            env=env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                    MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
        )
        for r in (0, 1)
    ]
    log = run_dir / "train.log"
    deadline = time.time() + 180
    while time.time() < deadline and not (log.exists() and "] step 2 " in log.read_text()):
        if any(p.poll() is not None for p in procs):
            break  # a rank died: its output is in the assertion below
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)
    (out0, err0), (out1, err1) = (p.communicate(timeout=120) for p in procs)
    assert [p.returncode for p in procs] == [0, 0], (err0[-2000:], err1[-2000:])
    assert "SIGTERM: finishing this step" in err1 and "SIGTERM" not in err0
    last = run_dir / "checkpoints" / "last.pt"
    stopped = load_checkpoint(last)["step"]
    assert f"stopped at step {stopped};" in out0 and out1 == ""
    assert sorted(p.name for p in first.iterdir()) == ["run"]  # rank 1 wrote nothing; no final checkpoint
    assert "distributed: 2 processes (gloo), 2 images per process per step" in log.read_text()
    command = shlex.split(out0.split("resume with:")[1].strip().splitlines()[0])
    assert command[:3] == ["torchrun", "--nproc_per_node=2", str(REPO / "scripts" / "train.py")]
    assert command[-1] == f"resume={last}"

    # The printed command (torchrun as python -m torch.distributed.run), to 2 more steps, run in a
    # fresh directory: the default run dir and checkpoint path are relative to it.
    steps = stopped + 2
    work, dump, logs = tmp_path / "work", tmp_path / "dump", tmp_path / "logs"
    work.mkdir()
    dump.mkdir()
    resumed_args = [f"trainer.steps={steps}" if a.startswith("trainer.steps=") else a for a in command[3:]]
    # scripts/train.py, plus every rank's final weights in dump/ (train_dumping_weights.py)
    result = torchrun(resumed_args, cwd=work, log_dir=logs, script=Path(__file__).parent / "train_dumping_weights.py",
                      FAST_STYLE_TEST_DUMP_WEIGHTS=str(dump))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in work.iterdir()) == ["checkpoints", "runs"]
    (run,) = (work / "runs").iterdir()
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["starry_night.pt"]
    assert {p.name for p in run.iterdir()} == {".hydra", "train.log", "samples", "checkpoints"}
    assert f"saved checkpoints/starry_night.pt (step {steps})" in rank_output(logs, 0, "stdout")
    assert rank_output(logs, 1, "stdout") == ""
    assert "error" not in rank_output(logs, 1, "stderr").lower()
    resumed_log = (run / "train.log").read_text()
    assert f"resuming from {last} at step {stopped}" in resumed_log
    assert resumed_log.count(f"val step {steps} ") == 1 and resumed_log.count(f"] step {steps} ") == 1

    # Replicas are identical, and the checkpoint holds them.
    state = load_checkpoint(work / "checkpoints" / "starry_night.pt")
    rank0, rank1 = torch.load(dump / "rank0.pt"), torch.load(dump / "rank1.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert all(torch.equal(rank0[k], state["model"][k]) for k in rank0)

    # One process, batch 4, straight through: the same images in the same order, the same losses.
    cfg = train_config_from_dict(state["config"])
    cfg.resume = None
    cfg.run_dir, cfg.ckpt_out = str(tmp_path / "single"), str(tmp_path / "single.pt")
    torch.manual_seed(cfg.seed)
    start = ImageTransformNet(TransformerConfig(**state["model_config"])).state_dict()  # train()'s init
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like each rank (OMP_NUM_THREADS=1); 2 threads on a busy 2-core box crawl
    try:
        single = train(cfg, logger=NullLogger())
    finally:
        torch.set_num_threads(threads)
    ddp_losses = {**logged_losses(log), **logged_losses(run / "train.log")}
    assert sorted(ddp_losses) == list(range(1, steps + 1))
    for step, terms in single.history:  # the logged loss is the mean over the global batch
        assert ddp_losses[step] == pytest.approx([terms[k] for k in ("content", "style", "tv", "total")], rel=1e-4)
    compare(rank0, load_checkpoint(cfg.ckpt_out)["model"], start, state["model_config"])
