"""Small random-init networks for the feature tests: they check the mechanics of an option
(tiling arithmetic, batching, flicker measurement), not style, so a few channels suffice."""

from __future__ import annotations

import torch

from fast_style.models import ImageTransformNet, TransformerConfig


def perturbed(config: TransformerConfig | None = None, scale: float = 0.05, seed: int = 0) -> ImageTransformNet:
    """A seeded network (default: width 8, one residual block) whose every parameter, norm scales
    and shifts included, is moved off its initial value, so that every layer changes the output."""
    torch.manual_seed(seed)
    model = ImageTransformNet(config or TransformerConfig(width=8, n_residual=1))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model.eval()
