"""Configuration and environment mistakes: one ``error:`` line, exit code 2, no traceback unless
verbose=true. Hydra's own errors (unknown style group option, unknown key) included. In-process
(tests/helpers.py's train_in_process: hydra's compose, then what scripts/train.py does); the script
itself in a subprocess for verbose=true and --help here, and for --cfg, multirun and the stylize
errors in tests/e2e/test_scripts.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fast_style.errors import ConfigError
from fast_style.train import train
from tests.helpers import good_photos, run_script, style_file, tiny_config, train_in_process


def refused(run_dir, monkeypatch, capsys, *overrides: str) -> str:
    """scripts/train.py's exit code 2 for ``overrides``, in-process; returns what it printed on stderr."""
    monkeypatch.setenv("HYDRA_FULL_ERROR", "")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        train_in_process(run_dir, *overrides)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["style=nonexistent"], "Could not find 'style/nonexistent'; Available options in 'style': candy"),
        (["trainer.bogus=1"], "Could not override 'trainer.bogus'"),
        (["style.image=/nonexistent/painting.jpg", "data.root=/nonexistent"],
         "style.image=/nonexistent/painting.jpg: no such file"),
    ],
)
def test_train_script_config_errors_are_one_line(tmp_path, args, message, monkeypatch, capsys):
    stderr = refused(tmp_path, monkeypatch, capsys, *args, "logger=none")
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr and "Traceback" not in stderr


@pytest.mark.slow  # a script in a subprocess
def test_verbose_shows_the_traceback(tmp_path):
    result = run_script("train.py", "style=nonexistent", "verbose=true", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.slow  # a script in a subprocess
def test_help_still_works():
    result = run_script("train.py", "--help")
    assert result.returncode == 0 and "Configuration groups" in result.stdout


@pytest.mark.parametrize(
    ("section", "key", "value", "match"),
    [
        ("data", "image_size", 30, "multiple of 4"),
        ("data", "image_size", 4, "between 16 and 4096"),  # VGG's pooling RuntimeError before
        ("data", "image_size", 20000, "between 16 and 4096"),  # no pixel cap before
        ("style", "size", 8, "between 16 and 4096"),
        ("style", "size", 100000, "between 16 and 4096"),
        (None, "seed", "abc", "seed must be an integer"),
        (None, "seed", 1e20, "seed must be an integer"),
        ("model", "n_residual", 10**7, "n_residual must be <= 64"),
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


def test_negative_loss_weight_is_refused(tmp_path, monkeypatch, capsys):
    stderr = refused(tmp_path / "run", monkeypatch, capsys, "loss.style_weight=-1",
                     f"style.image={style_file(tmp_path)}", f"data.root={tmp_path}", "logger=none")
    assert stderr == "error: loss.style_weight must be a number >= 0, got -1\n"


def test_train_user_errors_are_one_line(tmp_path, style_image, monkeypatch, capsys):
    stderr = refused(tmp_path, monkeypatch, capsys, "logger=none", f"style.image={style_image}")
    assert "data.root is not set" in stderr and "Traceback" not in stderr
    stderr = refused(tmp_path, monkeypatch, capsys, "logger=none", f"data.root={tmp_path / 'nope'}",
                     f"style.image={style_image}")
    assert "train2014" in stderr


def test_unsaveable_ckpt_out_is_refused_before_the_first_step(tmp_path):
    """A folder, or a path below a file, used to be found only after every step had run."""
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"))
    cfg.ckpt_out = str(tmp_path)
    with pytest.raises(ConfigError, match="is a folder; give a file"):
        train(cfg)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cfg.ckpt_out = str(blocker / "net.pt")
    with pytest.raises(ConfigError, match="ckpt_out: cannot create .*is not a folder"):
        train(cfg)
    assert not (Path(cfg.run_dir) / "checkpoints").exists()  # refused before anything was trained
