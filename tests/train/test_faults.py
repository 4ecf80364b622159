"""Fault injection in the training loop: non-finite losses roll back to the last good checkpoint
with a lower learning rate; a full disk keeps the previous checkpoint. Tiny runs with a
random-init VGG (see helpers)."""

from __future__ import annotations

import errno
import logging
import math
import os
from pathlib import Path

import pytest
import torch

import fast_style.train as train_module
from fast_style.checkpoint import load_checkpoint, save_checkpoint
from fast_style.cli import user_errors
from fast_style.errors import CheckpointError, FastStyleError
from fast_style.losses import LossTerms, PerceptualLoss
from fast_style.train import train
from tests.helpers import good_photos, tiny_config


def inject_nan(
    monkeypatch: pytest.MonkeyPatch, at_calls: set[int] | None = None, from_call: int | None = None
) -> list[int]:
    """Make the training loss NaN on the given forward calls (1-based), like a real divergence:
    NaN gradients turn the weights NaN after the optimizer step."""
    calls: list[int] = []

    class NaNLoss(PerceptualLoss):
        def forward(self, output: torch.Tensor, content: torch.Tensor) -> LossTerms:
            terms = super().forward(output, content)
            calls.append(len(calls) + 1)
            n = calls[-1]
            if (at_calls and n in at_calls) or (from_call is not None and n >= from_call):
                nan = terms.total * float("nan")
                return LossTerms(terms.content * float("nan"), terms.style, terms.tv, nan)
            return terms

    monkeypatch.setattr(train_module, "PerceptualLoss", NaNLoss)
    return calls


@pytest.mark.slow
def test_one_divergence_rolls_back_with_half_the_lr_and_finishes(tmp_path, monkeypatch, caplog):
    inject_nan(monkeypatch, at_calls={5})  # the 5th training step diverges once
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"), steps=8, log_every=2, ckpt_every=2)
    with caplog.at_level(logging.WARNING, logger="fast_style"):
        result = train(cfg)
    assert result.step == 8 and result.rollbacks == 1
    assert any("rolled back to" in r.getMessage() and "(step 4)" in r.getMessage() for r in caplog.records)
    steps = [s for s, _ in result.history]
    assert steps == sorted(steps) and steps[-1] == 8  # history has no diverged interval
    assert all(math.isfinite(v) for _, terms in result.history for v in terms.values())
    final = load_checkpoint(result.checkpoint)
    assert final["optimizer"]["param_groups"][0]["lr"] == pytest.approx(cfg.trainer.lr * 0.5)
    assert all(torch.isfinite(t).all() for t in final["model"].values())


@pytest.mark.slow
def test_divergence_between_log_intervals_never_reaches_a_checkpoint(tmp_path, monkeypatch):
    """log_every > ckpt_every: the checkpoint write itself checks the weights first."""
    inject_nan(monkeypatch, at_calls={3})
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"), steps=6, log_every=100, ckpt_every=2)
    result = train(cfg)
    assert result.rollbacks == 1 and result.step == 6
    assert all(torch.isfinite(t).all() for t in load_checkpoint(result.checkpoint)["model"].values())


@pytest.mark.slow
def test_rollbacks_are_bounded(tmp_path, monkeypatch):
    inject_nan(monkeypatch, from_call=4)  # diverges every time from step 4 on
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"), steps=20, log_every=1, ckpt_every=2,
                      max_rollbacks=2)
    with pytest.raises(FastStyleError, match=r"after 2 rollback\(s\).*lr now 0.0025.*last good checkpoint"):
        train(cfg)
    state = load_checkpoint(Path(cfg.run_dir) / "checkpoints" / "last.pt")
    assert state["step"] == 2 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_divergence_before_any_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    inject_nan(monkeypatch, at_calls={1})
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"), steps=5, ckpt_every=100)
    with pytest.raises(FastStyleError, match="before any checkpoint was written.*lower trainer.lr"):
        train(cfg)


def test_huge_learning_rate_is_survived_or_reported(tmp_path):
    """No monkeypatch: lr=1e6 with large weights. Either the run survives (rolls back until the lr is
    small enough) or it stops with the clear error; it never writes non-finite weights."""
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"), steps=6, log_every=1, ckpt_every=1, lr=1e6)
    cfg.loss.style_weight = 1e30
    cfg.loss.content_weight = 1e30
    try:
        result = train(cfg)
        paths = [result.checkpoint]
    except FastStyleError as e:
        assert "non-finite" in str(e)
        paths = list((Path(cfg.run_dir) / "checkpoints").glob("*.pt"))
    for path in paths:
        assert all(torch.isfinite(t).all() for t in load_checkpoint(path)["model"].values())


def _fill_disk_after(monkeypatch: pytest.MonkeyPatch, n_bytes: int) -> None:
    """Every file that atomic_write opens fails with ENOSPC once ``n_bytes`` are written to it
    (a disk that fills up mid-write)."""
    import fast_style.fileio as fileio

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            data = bytes(data)
            if self.written + len(data) > n_bytes:
                self.f.write(data[: max(0, n_bytes - self.written)])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(fileio.os, "fdopen", lambda fd, *a, **k: FullDisk(real_fdopen(fd, *a, **k)))


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    path = tmp_path / "ck" / "last.pt"
    save_checkpoint({"model_config": {"width": 8, "n_residual": 1}, "model": {}, "step": 1}, path)
    before = path.read_bytes()
    _fill_disk_after(monkeypatch, 100)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint there is unchanged"):
        save_checkpoint({"model_config": {"width": 8, "n_residual": 1}, "model": {}, "step": 2}, path)
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left behind
    with pytest.raises(SystemExit) as exit_info, user_errors():
        save_checkpoint({"model_config": {}, "model": {}, "step": 3}, path)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_disk_full_during_training_stops_with_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"), steps=10, ckpt_every=2)
    real = train_module.save_checkpoint
    calls = []

    def save_then_fill(state, path):
        calls.append(path)
        if len(calls) == 2:  # the second periodic checkpoint hits a full disk
            _fill_disk_after(monkeypatch, 1000)
        return real(state, path)

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_fill)
    with pytest.raises(CheckpointError, match="cannot write the checkpoint"):
        train(cfg)
    state = load_checkpoint(Path(cfg.run_dir) / "checkpoints" / "last.pt")
    assert state["step"] == 2
