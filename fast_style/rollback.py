"""Recovering from a diverged training (a non-finite loss or weights): back to the last good
checkpoint with a lower learning rate, at most ``trainer.max_rollbacks`` times.

Kept out of the loop: the loop only notices divergence and calls :func:`roll_back`; what
"going back" restores is the same ``load_state_dict`` that resume uses, so the two agree.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from fast_style.checkpoint import load_checkpoint
from fast_style.config import TrainerConfig
from fast_style.distributed import Distributed
from fast_style.errors import FastStyleError

log = logging.getLogger(__name__)


class Restorable(Protocol):
    """What a rollback restores (train.TrainState)."""

    step: int
    optimizer: torch.optim.Optimizer

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Histories(Protocol):
    """What a rollback rewrites (train.TrainResult): entries past the restored step are undone."""

    history: list[tuple[int, dict[str, float]]]
    val_history: list[tuple[int, dict[str, float]]]
    rollbacks: int


def roll_back(state: Restorable, result: Histories, good_ckpt: Path | None, trainer: TrainerConfig,
              ctx: Distributed, why: str, bar: tqdm) -> None:
    """Reload ``good_ckpt`` into ``state`` with every lr times ``trainer.rollback_lr_factor``
    (lowered again on each rollback: the same lr would likely diverge again), trim the loss
    histories to its step and move the progress bar back. Raises when there is nothing to go
    back to or the rollbacks are used up, since then only the user can change the recipe.
    The caller restarts its batches at ``state.step``."""
    at_step = state.step
    if good_ckpt is None:
        raise FastStyleError(
            f"{why} at step {at_step}, before any checkpoint was written, so there is nothing to roll "
            "back to; lower trainer.lr or the loss weights"
        )
    if result.rollbacks >= trainer.max_rollbacks:
        raise FastStyleError(
            f"{why} at step {at_step} after {result.rollbacks} rollback(s) (trainer.max_rollbacks="
            f"{trainer.max_rollbacks}, lr now {state.optimizer.param_groups[0]['lr']:.3g}); lower "
            f"trainer.lr or the loss weights; last good checkpoint: {good_ckpt}"
        )
    good = ctx.on_main(lambda: load_checkpoint(good_ckpt))
    lrs = [group["lr"] for group in state.optimizer.param_groups]  # lowered again on every rollback
    state.load_state_dict(good)
    for group, lr in zip(state.optimizer.param_groups, lrs):
        group["lr"] = lr * trainer.rollback_lr_factor
    result.rollbacks += 1
    result.history[:] = [h for h in result.history if h[0] <= state.step]
    result.val_history[:] = [h for h in result.val_history if h[0] <= state.step]
    if ctx.is_main:
        log.warning(
            "%s at step %d: rolled back to %s (step %d) with lr %.3g (rollback %d of %d)",
            why, at_step, good_ckpt, state.step, state.optimizer.param_groups[0]["lr"], result.rollbacks,
            trainer.max_rollbacks,
        )
    bar.n = state.step
    bar.refresh()


def finite_weights(model: torch.nn.Module) -> bool:
    """Whether every weight is finite: one host sync, so the loop asks only before a checkpoint,
    which must never capture a diverged network as the "last good" one."""
    return bool(torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all())
