"""``trainer.compile``: whether a run compiles its training step, and the compiled step itself.

Kept apart from the loop because it is a cost model (CPU timings measured on one machine), not
training: the loop asks :func:`loss_function` once for the function each step calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch

from fast_style.config import TrainConfig
from fast_style.losses import LossTerms

log = logging.getLogger(__name__)

# trainer.compile=auto: what a cold torch.compile of the training step costs and buys, per device
# type. CPU figures measured on 2 cores (docs/PERFORMANCE.md: Johnson net, 256 px, batch 4:
# 2.63 s per eager step, 1.75x compiled, ~50 s cold compile); the speed-up is taken at 1.5x to stay
# on the safe side. CUDA figures are assumptions (not measured here): ~0.1 s per such step,
# ~60 s to compile. ``seconds_per_pixel`` = eager step time / (batch x pixels) for width 32.
COMPILE_COSTS = {
    "cpu": {"compile_s": 50.0, "speedup": 1.5, "seconds_per_pixel": 2.63 / (4 * 256 * 256)},
    "cuda": {"compile_s": 60.0, "speedup": 1.5, "seconds_per_pixel": 0.1 / (4 * 256 * 256)},
}


def decide_compile(setting: bool | str, device: torch.device, steps_left: int, batch_size: int,
                   image_size: int, width: int = 32) -> tuple[bool, str]:
    """(compile?, reason) for ``trainer.compile``: true/false as given; ``auto`` compiles when the
    estimated time saved over the remaining steps repays the cold compile with a 2x margin
    (the estimate is rough, and a needless compile costs a short run most).

    Estimated eager step = seconds_per_pixel x batch x image_size^2 x (width / 32) ^ 0.5 (the
    loss network, independent of width, is most of a step: half the width was 1.37x, not 4x,
    faster); saved per step = step x (1 - 1 / speedup)."""
    if setting != "auto":  # true or false: TrainConfig.validate refuses anything else
        return bool(setting), f"trainer.compile={str(setting).lower()}"
    costs = COMPILE_COSTS.get(device.type, COMPILE_COSTS["cuda"])
    step_s = costs["seconds_per_pixel"] * batch_size * image_size**2 * (width / 32) ** 0.5
    saved = max(steps_left, 0) * step_s * (1 - 1 / costs["speedup"])
    decision = saved >= 2 * costs["compile_s"]
    return decision, (
        f"trainer.compile=auto: {'compiling' if decision else 'eager'} ({steps_left} steps x ~{step_s:.2g} s "
        f"estimated on {device.type}: compiling would save ~{saved:.0f} s against a ~{costs['compile_s']:.0f} s "
        f"cold compile{'' if decision else '; it pays from ~2x that'})"
    )


class CompiledLoss:
    """``torch.compile(fn)`` of the step's forward pass: one graph for transformer + loss network
    + loss terms, backward compiled with it. The first call (the cold compile) is timed and
    logged apart, so a slow first step is not mistaken for a slow run."""

    def __init__(self, fn: Callable[..., LossTerms], log_first_call: bool) -> None:
        self.fn = torch.compile(fn)
        self.cold = True
        self.log_first_call = log_first_call

    def __call__(self, *args: Any) -> LossTerms:
        if not self.cold:
            return self.fn(*args)
        started = time.perf_counter()
        terms = self.fn(*args)
        self.cold = False
        if self.log_first_call:
            log.info("torch.compile: first step (cold compile) took %.1f s", time.perf_counter() - started)
        return terms


def loss_function(
    forward: Callable[..., LossTerms], cfg: TrainConfig, device: torch.device, steps_left: int, width: int,
    main: bool,
) -> Callable[..., LossTerms]:
    """``forward`` (the loop's forward pass), compiled when ``trainer.compile`` says so; the
    decision is logged on the main process, since it changes what the first minute looks like."""
    use_compile, reason = decide_compile(
        cfg.trainer.compile, device, steps_left, cfg.data.batch_size, cfg.data.image_size, width
    )
    if main:
        log.info("%s", reason)
    return CompiledLoss(forward, log_first_call=main) if use_compile else forward
