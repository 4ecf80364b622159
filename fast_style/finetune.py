"""Training that starts from an existing network instead of fresh weights.

- ``finetune=<multi-style checkpoint>``: adds ``styles`` to it by training only the new styles'
  rows of the conditional instance norms (gradient hooks keep every other weight fixed), so the
  styles it already paints are unchanged bit for bit.
- ``init_from=<checkpoint or shipped name>``: a new one-style run starts from its weights (step 0,
  fresh optimizer).

Both checkpoints are read and checked before any other work, so a wrong one costs seconds.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from fast_style.checkpoint import load_checkpoint
from fast_style.config import TrainConfig
from fast_style.errors import ConfigError
from fast_style.models import ImageTransformNet
from fast_style.models.transformer import ConditionalInstanceNorm2d

log = logging.getLogger(__name__)


def load_finetune_base(cfg: TrainConfig) -> dict[str, Any]:
    """The multi-style checkpoint that ``cfg.finetune`` extends, checked before any other work."""
    base = load_checkpoint(cfg.finetune)
    old = [str(n) for n in base.get("styles", [])]
    if len(old) < 2 or int(base["model_config"].get("n_styles", 1)) != len(old):
        raise ConfigError(f"finetune={cfg.finetune}: not a multi-style checkpoint (train one with styles=[a,b])")
    twice = [s.name for s in cfg.styles if s.name in old]
    if twice:
        raise ConfigError(f"finetune: {cfg.finetune} already holds style(s) {twice}; it holds: {', '.join(old)}")
    return base


def prepare_finetune(model: ImageTransformNet, n_old: int) -> list[torch.nn.Parameter]:
    """Freeze everything but the conditional instance norms, and their first ``n_old`` rows too
    (a gradient hook zeroes them, so Adam never moves them); returns the parameters to optimise."""
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = []
    mask_rows = torch.arange(model.config.n_styles) >= n_old
    for m in model.modules():
        if isinstance(m, ConditionalInstanceNorm2d):
            for p in (m.weight, m.bias):
                p.requires_grad_(True)
                mask = mask_rows.to(p.device, p.dtype)[:, None]
                p.register_hook(lambda grad, mask=mask: grad * mask)
                trainable.append(p)
    return trainable


def load_initial_weights(cfg: TrainConfig) -> dict[str, Any]:
    """The checkpoint of ``cfg.init_from`` (a path or a shipped style name), read before any other
    work. Any fast-style checkpoint will do, shipped fp16 ones included (load_checkpoint resolves
    the name and returns fp32 weights): only its weights are used."""
    state = load_checkpoint(cfg.init_from)
    if state.get("styles") and len(state["styles"]) > 1:
        raise ConfigError(f"init_from={cfg.init_from}: a multi-style network ({', '.join(state['styles'])}); "
                          "extend it with finetune= instead")
    return state


def apply_initial_weights(cfg: TrainConfig, start: dict[str, Any], model: ImageTransformNet) -> None:
    """Copy ``start``'s weights into the fresh ``model`` (same architecture, or one clear error)."""
    theirs, ours = start.get("model_config", {}), model.config.to_dict()
    if theirs != ours:
        raise ConfigError(f"init_from={cfg.init_from}: its network {theirs} is not this run's model {ours}; "
                          "choose the matching model= settings")
    model.load_state_dict(start["model"])
    log.info("starting from the weights of %s (%s, trained %s steps); step 0, fresh optimizer",
             cfg.init_from, start.get("style"), start.get("step"))
