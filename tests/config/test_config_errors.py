"""Configuration and environment mistakes: one ``error:`` line, exit code 2, no traceback unless
verbose=true. Hydra's own errors (unknown style group option, unknown key) included; --help,
--cfg and multirun keep working (multirun: tests/e2e/test_scripts.py)."""

from __future__ import annotations

import pytest
import torch

from fast_style.errors import ConfigError
from fast_style.train import train

from tests.helpers import good_photos, run_script, style_file, tiny_config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["style=nonexistent"], "Could not find 'style/nonexistent'; Available options in 'style': candy"),
        (["trainer.bogus=1"], "Could not override 'trainer.bogus'"),
        (["style.image=/nonexistent/painting.jpg", "data.root=/nonexistent"], "style.image=/nonexistent/painting.jpg: no such file"),
    ],
)
def test_train_script_config_errors_are_one_line(tmp_path, args, message):
    result = run_script("train.py", *args, "logger=none", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_verbose_shows_the_traceback(tmp_path):
    result = run_script("train.py", "style=nonexistent", "verbose=true", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_help_still_works():
    result = run_script("train.py", "--help")
    assert result.returncode == 0 and "Configuration groups" in result.stdout


@pytest.mark.parametrize(
    ("section", "key", "value", "match"),
    [
        ("data", "image_size", 30, "multiple of 4"),
        ("data", "root", "/nonexistent/coco", "no such folder"),
        ("data", "max_bad_fraction", -0.1, "max_bad_fraction"),
        ("trainer", "steps", "abc", "trainer.steps must be a number"),
        ("trainer", "max_rollbacks", -1, "max_rollbacks"),
        ("trainer", "rollback_lr_factor", 0.0, "rollback_lr_factor"),
        ("style", "image", "/nonexistent.jpg", "no such file"),
        (None, "device", "cuda:7" if not torch.cuda.is_available() else "tpu", "device"),
    ],
)
def test_bad_values_fail_before_training(tmp_path, section, key, value, match):
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"))
    setattr(getattr(cfg, section) if section else cfg, key, value)
    with pytest.raises(ConfigError, match=match):
        train(cfg)


def test_negative_loss_weight_is_refused(tmp_path):
    result = run_script(
        "train.py", "loss.style_weight=-1", f"style.image={style_file(tmp_path)}", f"data.root={tmp_path}",
        "logger=none", f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2 and result.stderr == "error: loss.style_weight must be a number >= 0, got -1\n"
