"""Helpers shared by the tests (one definition each; tests/conftest.py holds the fixtures).

The tiny training setups train with a seeded random-init VGG16 (loss_net.weights=random) at 32 px
with an 8-channel, 1-residual-block network: these runs check mechanics and failure handling, not
image quality. ``perturbed`` networks are random-init too: they check the mechanics of an option
(tiling arithmetic, batching, flicker measurement), not style.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from fast_style.config import TrainConfig
from fast_style.models import ImageTransformNet, TransformerConfig
from fast_style.script_configs import register_configs

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
CONFIGS = REPO / "configs"


def good_photos(folder: Path, n: int = 6, seed: int = 0) -> Path:
    """``n`` small gradient-plus-noise photos (sizes vary, all larger than the 32 px crop)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(gradient_photo(i, rng)).save(folder / f"good{i}.{'png' if i % 2 else 'jpg'}")
    return folder


def gradient_photo(i: int, rng: np.random.Generator) -> np.ndarray:
    """The ``i``-th small test photo: a colour gradient plus noise, (40 + 4i) x (52 - 2i), uint8 HWC."""
    h, w = 40 + 4 * i, 52 - 2 * i
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def style_file(folder: Path) -> Path:
    """A synthetic 'painting' (Mandelbrot), so these tests need no shared data."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "style.png"
    Image.effect_mandelbrot((64, 48), (-2, -1.5, 1, 1.5), 30).convert("RGB").save(path)
    return path


# trainer.compile=false in every tiny run: with the default ``auto`` a long run (the stop/resume
# tests train with trainer.steps=100000 until a signal) compiles first, and the cold compile
# (268 s measured on a loaded 2-core machine) outlasts the tests' waits for the first steps.
# Only tests about compiling (tests/train/test_compile_auto.py, test_train.py's compiled run) compile.
TINY_RUNS_STAY_EAGER = "trainer.compile=false"
# trainer.amp=auto picks bf16 on CPUs with bf16 units and fp32 elsewhere, and CI machines differ
# from session to session: tests pin fp32 so that their numbers do not depend on the machine kind
# (test_train.py's bf16 run and test_device.py's decide_amp tests ask for bf16 themselves).
TINY_RUNS_IN_FP32 = "trainer.amp=none"


def tiny_config(
    tmp_path: Path, photos: Path, steps: int = 4, style: Path | None = None, **trainer: object
) -> TrainConfig:
    """A CPU run that takes well under a second per step (random-init VGG, see module docstring);
    ``style`` defaults to a synthetic painting (:func:`style_file`)."""
    cfg = TrainConfig()
    cfg.style.image = str(style or style_file(tmp_path / "style"))
    cfg.style.size = 48
    cfg.data.root = str(photos)
    cfg.data.image_size = 32
    cfg.data.batch_size = 2
    cfg.data.workers = 0
    cfg.data.n_samples = 2
    cfg.model.width = 8
    cfg.model.n_residual = 1
    cfg.loss_net.weights = "random"
    cfg.loss.style_weight = 10.0  # normalised recipe: style dominates, so tiny runs learn fast
    cfg.device = "cpu"
    cfg.trainer.steps = steps
    cfg.trainer.lr = 1e-2
    cfg.trainer.log_every = 1
    cfg.trainer.sample_every = 1000
    cfg.trainer.val_every = 1000
    cfg.trainer.ckpt_every = 1
    cfg.trainer.compile = False  # see TINY_RUNS_STAY_EAGER; compile tests pass compile=True
    cfg.trainer.amp = "none"  # see TINY_RUNS_IN_FP32
    for k, v in trainer.items():
        setattr(cfg.trainer, k, v)
    cfg.run_dir = str(tmp_path / "runs" / "starry_night-1")
    cfg.run_name = "starry_night-1"
    cfg.ckpt_out = str(tmp_path / "final.pt")
    return cfg


def tiny_train_args(photos: Path, style: Path, steps: int = 3) -> list[str]:
    """The same tiny run as hydra overrides for scripts/train.py (a later override of the same key
    wins, so callers append their changes)."""
    return [
        f"style.image={style}", "style.size=48", f"data.root={photos}", "data.image_size=32",
        "data.batch_size=2", "data.workers=0", "data.n_samples=2", "model.width=8", "model.n_residual=1",
        "loss_net.weights=random", f"trainer.steps={steps}", "trainer.log_every=1",
        "trainer.sample_every=1000", "logger=none", "device=cpu", TINY_RUNS_STAY_EAGER, TINY_RUNS_IN_FP32,
    ]


def script_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def run_script(script: str, *args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO, env=script_env(),
    )


def compose_train(*overrides: str) -> DictConfig:
    """configs/train.yaml composed in-process with hydra's compose API, as ``scripts/train.py
    <overrides>`` would see it (resolve it with ``OmegaConf.to_container(cfg, resolve=True)``):
    config wiring tests need no subprocess."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def train_in_process(run_dir: Path, *overrides: str) -> None:
    """What ``python scripts/train.py <overrides> hydra.run.dir=<run_dir>`` does, in-process: hydra's
    compose instead of ``hydra.main``, then the script's own conversion and ``train()`` call with the
    same error handling (``cli.run_hydra_main``: hydra's errors; ``cli.user_errors``: ours), so a
    refused config raises ``SystemExit(2)`` after one ``error:`` line on stderr, as the script exits.
    For config wiring and refusals: a subprocess would add only torch and hydra start-up. Callers
    ``monkeypatch.setenv("HYDRA_FULL_ERROR", "")`` first: run_hydra_main sets it in os.environ."""
    from fast_style.cli import run_hydra_main, user_errors
    from fast_style.config import named_style_configs, train_config_from_dict
    from fast_style.train import train

    def main() -> None:
        cfg = compose_train(*overrides)
        with user_errors(cfg.get("verbose", False)):
            values = OmegaConf.to_container(cfg, resolve=True)
            values["run_dir"] = str(run_dir)
            values["styles"] = named_style_configs(values["styles"] or [], CONFIGS / "style", values.pop("styles_dir"))
            train(train_config_from_dict(values))

    run_hydra_main(main, argv=list(overrides))


# as scripts/train.py: the options' dataclasses in hydra's ConfigStore, and the style_label resolver
register_configs()


def perturbed(config: TransformerConfig | None = None, scale: float = 0.05, seed: int = 0) -> ImageTransformNet:
    """A seeded network (default: width 8, one residual block) whose every parameter, norm scales
    and shifts included, is moved off its initial value, so that every layer changes the output."""
    torch.manual_seed(seed)
    model = ImageTransformNet(config or TransformerConfig(width=8, n_residual=1))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model.eval()
