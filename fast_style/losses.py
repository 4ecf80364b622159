"""Perceptual losses of Johnson et al.: content (features), style (Gram matrices) and total variation.

One implementation used by training, validation and (later) optimisation and evaluation, so all of
them are measured with the same yardstick.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.errors import ConfigError
from fast_style.models.loss_nets import LossNet

# Weighted terms: content + style + tv == total, so every logged number adds up.
LossTerms = namedtuple("LossTerms", ["content", "style", "tv", "total"])

JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@dataclass
class LossConfig:
    """Weights follow pytorch/examples' convention (features of ImageNet-normalised input,
    Grams divided by c*h*w, mean squared errors), so familiar values carry over."""

    content_weight: float = 1e5
    style_weight: float = 1e10
    tv_weight: float = 1e2
    content_layer: str = "relu2_2"
    style_layers: Sequence[str] = JOHNSON_STYLE_LAYERS
    style_layer_weights: Sequence[float] | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or value != value:
                raise ConfigError(f"loss.{name} must be a number >= 0, got {value!r}")
        self.style_layers = tuple(self.style_layers)
        if not self.style_layers:
            raise ConfigError("loss.style_layers must name at least one layer")
        if self.style_layer_weights is None:
            self.style_layer_weights = (1.0,) * len(self.style_layers)
        self.style_layer_weights = tuple(float(w) for w in self.style_layer_weights)
        if len(self.style_layer_weights) != len(self.style_layers):
            raise ConfigError(
                f"loss.style_layer_weights has {len(self.style_layer_weights)} entries "
                f"but loss.style_layers has {len(self.style_layers)}"
            )

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys([self.content_layer, *self.style_layers]))


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(b, c, h, w) -> (b, c, c) Gram matrices divided by c*h*w.

    Dividing by c*h*w makes the value independent of the image size, so one style weight works
    for training crops and full-size evaluation. Accumulates in fp32 even under autocast: the sum
    runs over h*w products and loses most of its digits in bf16.
    """
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w).float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features, target)


def style_loss(
    grams: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], weights: Sequence[float]
) -> torch.Tensor:
    """Weighted sum over layers of the MSE between Gram matrices (targets broadcast over the batch)."""
    total = grams[0].new_zeros(())
    for g, t, w in zip(grams, targets, weights):
        total = total + w * F.mse_loss(g, t.expand_as(g))
    return total


def tv_loss(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: mean absolute difference of neighbouring pixels."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy


class PerceptualLoss(nn.Module):
    """Holds the frozen loss network and the style image's Grams (computed once, at construction).

    ``forward(output, content)`` runs the loss network once on the output (all layers) and once,
    without gradients, on the content image only up to the content layer: nothing deeper is needed.
    """

    def __init__(self, loss_net: LossNet, style_image: torch.Tensor, config: LossConfig):
        super().__init__()
        self.loss_net = loss_net
        self.config = config
        if style_image.dim() == 3:
            style_image = style_image.unsqueeze(0)
        with torch.no_grad():
            feats = loss_net.extract(style_image, config.style_layers)
        for i, layer in enumerate(config.style_layers):
            self.register_buffer(f"style_gram_{i}", gram_matrix(feats[layer]))

    @property
    def style_grams(self) -> list[torch.Tensor]:
        return [getattr(self, f"style_gram_{i}") for i in range(len(self.config.style_layers))]

    def forward(self, output: torch.Tensor, content: torch.Tensor) -> LossTerms:
        return self.terms(output, self.content_target(content))

    @torch.no_grad()
    def content_target(self, content: torch.Tensor) -> torch.Tensor:
        """Content-layer features of the content image. Optimisation (fast_style.optimize) computes
        them once instead of at every evaluation; training calls ``forward``, which does both."""
        cfg = self.config
        return self.loss_net.extract(content, [cfg.content_layer])[cfg.content_layer]

    def terms(self, output: torch.Tensor, target: torch.Tensor) -> LossTerms:
        """The weighted loss terms of ``output`` given precomputed content features ``target``."""
        cfg = self.config
        feats = self.loss_net.extract(output, cfg.layers)
        c = cfg.content_weight * content_loss(feats[cfg.content_layer].float(), target.float())
        grams = [gram_matrix(feats[layer]) for layer in cfg.style_layers]
        s = cfg.style_weight * style_loss(grams, self.style_grams, cfg.style_layer_weights)
        t = cfg.tv_weight * tv_loss(output.float())
        return LossTerms(c, s, t, c + s + t)
