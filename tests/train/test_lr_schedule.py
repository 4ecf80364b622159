"""trainer.lr_schedule: constant (the default) keeps trainer.lr; cosine decays it from trainer.lr to
0 over trainer.steps, and a resumed run continues the same lr sequence bit for bit."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from fast_style.checkpoint import load_checkpoint
from fast_style.config import TrainConfig
from fast_style.errors import ConfigError
from fast_style.loggers import NullLogger
from fast_style.models.transformer import OUTPUT_SCALE
from fast_style.train import train
from tests.helpers import compose_train, tiny_config, train_in_process

STEPS, LR = 6, 1e-2


class LrLogger(NullLogger):
    """Records the "lr" series the loop logs at each log interval: the lr of the step just taken."""

    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def log_scalar(self, name: str, step: int, value: float) -> None:
        if name == "lr":
            self.lrs[step] = value


def cosine(step: int) -> float:
    """The lr of 0-based ``step``: trainer.lr x 0.5 (1 + cos(pi step / trainer.steps))."""
    return LR * 0.5 * (1 + math.cos(math.pi * step / STEPS))


def test_cosine_follows_the_formula_and_resumes_the_same_sequence(tmp_path, tiny_photos, style_image):
    kept = tmp_path / "step3.pt"

    def keep_step_3(step: int, _means: dict) -> None:  # last.pt holds step 3 until step 6's final save
        if step == 4:
            shutil.copy(Path(cfg.run_dir) / "checkpoints" / "last.pt", kept)

    cfg = tiny_config(tmp_path / "full", tiny_photos, STEPS, style_image, lr_schedule="cosine", ckpt_every=3)
    full_log = LrLogger()
    full = train(cfg, logger=full_log, on_log=keep_step_3)
    # logged after step s (1-based): the lr that step used, i.e. the formula at 0-based s - 1
    assert sorted(full_log.lrs) == list(range(1, STEPS + 1))
    for step, lr in full_log.lrs.items():
        assert lr == pytest.approx(cosine(step - 1), rel=1e-12, abs=0), step
    assert full_log.lrs[STEPS] < LR / 10  # really decayed: the last step is near 0
    groups = load_checkpoint(full.checkpoint)["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([cosine(STEPS - 1), cosine(STEPS - 1) * OUTPUT_SCALE])

    assert load_checkpoint(kept)["step"] == 3
    resume = tiny_config(tmp_path / "resumed", tiny_photos, STEPS, style_image, lr_schedule="cosine", ckpt_every=3)
    resume.resume = str(kept)
    resumed_log = LrLogger()
    resumed = train(resume, logger=resumed_log)
    assert resumed_log.lrs == {s: full_log.lrs[s] for s in (4, 5, 6)}  # exactly the same lrs
    assert resumed.history == full.history[3:]  # and so the same losses
    a, b = load_checkpoint(full.checkpoint)["model"], load_checkpoint(resumed.checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_constant_is_the_default_and_keeps_the_lr(tmp_path, tiny_photos, style_image):
    assert TrainConfig().trainer.lr_schedule == "constant"
    assert compose_train().trainer.lr_schedule == "constant"  # TrainerConfig's default, as the CLI composes it
    log = LrLogger()
    train(tiny_config(tmp_path, tiny_photos, 3, style_image), logger=log)
    assert log.lrs == {1: LR, 2: LR, 3: LR}


def test_an_unknown_schedule_is_one_config_error_line(tmp_path, monkeypatch, capsys):
    cfg = TrainConfig()
    cfg.data.root = str(tmp_path)
    cfg.trainer.lr_schedule = "linearr"
    with pytest.raises(ConfigError, match="trainer.lr_schedule must be constant or cosine, got 'linearr'"):
        cfg.validate()
    monkeypatch.setenv("HYDRA_FULL_ERROR", "")  # as tests/config/test_config_errors.py: scripts/train.py in-process
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        train_in_process(tmp_path, "trainer.lr_schedule=linearr", "logger=none")
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2
    assert stderr == "error: trainer.lr_schedule must be constant or cosine, got 'linearr'\n", stderr
