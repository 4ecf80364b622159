"""Perceptual losses of Johnson et al.: content (features), style (Gram matrices) and total variation.

One implementation used by training, validation and (later) optimisation and evaluation, so all of
them are measured with the same yardstick.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.errors import ConfigError
from fast_style.models.loss_nets import LossNet

# Weighted terms: content + style + tv == total, so every logged number adds up.
LossTerms = namedtuple("LossTerms", ["content", "style", "tv", "total"])
TERMS = LossTerms._fields


def terms_dict(terms: LossTerms | Sequence[torch.Tensor] | torch.Tensor) -> dict[str, float]:
    """Loss terms as ``{"content": ..., "style": ..., "tv": ..., "total": ...}`` floats: what logs,
    histories and reports hold. ``terms``: a :class:`LossTerms` of scalar tensors or one tensor of
    the four values (e.g. sums over a validation set divided by its size); one host sync either way."""
    values = terms if isinstance(terms, torch.Tensor) else torch.stack([t.detach().float() for t in terms])
    return dict(zip(TERMS, values.tolist()))

JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
GATYS_CONTENT_LAYER = "relu4_2"  # Caffe's in-place ReLU makes Gatys' "conv4_2" blob relu4_2
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# (content layer, style layers) each loss network trains with when loss.content_layer /
# loss.style_layers are left unset: Johnson et al.'s for their VGG16; Gatys et al.'s for the
# VGG19s, which on vgg19_caffe moved 200-step networks further towards the painting at the same
# content change (docs/QUALITY.md).
DEFAULT_LAYERS = {
    "vgg16": ("relu2_2", JOHNSON_STYLE_LAYERS),
    "vgg19_caffe": (GATYS_CONTENT_LAYER, GATYS_STYLE_LAYERS),
    "vgg19": (GATYS_CONTENT_LAYER, GATYS_STYLE_LAYERS),
}

# The default weights of the normalised recipe, for every loss network (docs/QUALITY.md has the
# measurements behind them); StyleConfig's per-style weights default to the same values.
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 1.0
TV_WEIGHT = 0.0


@dataclass
class LossConfig:
    """The weighted terms of a perceptual loss.

    With ``normalize`` (the default) every term is a relative error, so the weights do not depend
    on the loss network. ``normalize=False`` is the classic recipe of pytorch/examples (raw MSEs of
    features and of Grams divided by c*h*w), whose weights must be re-tuned per loss network
    (e.g. content 1e5 with style 1e10 on VGG16, 1e7 on vgg19_caffe)."""

    content_weight: float = CONTENT_WEIGHT
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = TV_WEIGHT
    content_layer: str | None = None  # None: the loss network's default (DEFAULT_LAYERS)
    style_layers: Sequence[str] | None = None  # idem
    style_layer_weights: Sequence[float] | None = field(default=None)
    # True: every style layer's Gram error is divided by the reference photos' own Gram error (the
    # training photos' distance to the painting, measured once: ``photo_distances``) and the style
    # term is the weighted mean over layers, so an unchanged photo scores 1 on every layer of every
    # painting; the content error is divided by the photo features' mean square. False: raw MSEs
    # summed over layers (the classic recipe).
    normalize: bool = True

    def __post_init__(self) -> None:
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or value != value:
                raise ConfigError(f"loss.{name} must be a number >= 0, got {value!r}")
        if self.style_layers is not None:
            self.style_layers = tuple(self.style_layers)
            if not self.style_layers:
                raise ConfigError("loss.style_layers must name at least one layer")
        if self.style_layer_weights is not None:
            self.style_layer_weights = tuple(float(w) for w in self.style_layer_weights)
            if self.style_layers is not None and len(self.style_layer_weights) != len(self.style_layers):
                raise ConfigError(
                    f"loss.style_layer_weights has {len(self.style_layer_weights)} entries "
                    f"but loss.style_layers has {len(self.style_layers)}"
                )

    def for_loss_net(self, name: str) -> LossConfig:
        """This config with unset layers (and layer weights) filled in for loss network ``name``."""
        content, style = DEFAULT_LAYERS.get(name, DEFAULT_LAYERS["vgg16"])
        layers = tuple(self.style_layers) if self.style_layers is not None else style
        weights = self.style_layer_weights if self.style_layer_weights is not None else (1.0,) * len(layers)
        if len(weights) != len(layers):
            raise ConfigError(
                f"loss.style_layer_weights has {len(weights)} entries but {name}'s style layers are "
                f"{len(layers)}: {', '.join(layers)}"
            )
        return replace(self, content_layer=self.content_layer or content, style_layers=layers,
                       style_layer_weights=weights)

    @property
    def layers(self) -> list[str]:
        """Every layer the loss reads (resolved config only: see :meth:`for_loss_net`)."""
        if self.content_layer is None or self.style_layers is None:
            raise ValueError("LossConfig.layers needs resolved layers: call for_loss_net(name) first")
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


def content_loss(features: torch.Tensor, target: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """MSE between feature maps; ``normalize`` divides each image's error by its own target's mean
    square (a relative error, independent of the loss network's feature scale) and averages over
    the batch. Per image, so the value does not depend on how a batch is split (torchrun ranks)."""
    if not normalize:
        return F.mse_loss(features, target)
    dims = tuple(range(1, target.dim()))
    per_image = (features - target).pow(2).mean(dims) / target.pow(2).mean(dims).clamp_min(1e-12)
    return per_image.mean()


def style_loss(
    grams: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    weights: Sequence[float],
    scales: Sequence[float] | None = None,
) -> torch.Tensor:
    """Weighted sum over layers of the MSE between Gram matrices (targets broadcast over the batch),
    each layer's MSE divided by its entry in ``scales`` (default 1)."""
    scales = scales if scales is not None else [1.0] * len(grams)
    total = grams[0].new_zeros(())
    for g, t, w, s in zip(grams, targets, weights, scales):
        total = total + w * F.mse_loss(g, t.expand_as(g)) / s
    return total


def photo_distances(
    loss_net: LossNet,
    photos: torch.Tensor | Sequence[torch.Tensor],
    style_grams: Sequence[torch.Tensor],
    layers: Sequence[str],
) -> list[float]:
    """Per style layer, the mean Gram MSE between ``photos`` and the painting: the normaliser of
    ``LossConfig.normalize``.

    Grams of different layers (and of different paintings) differ by orders of magnitude in how far
    a photo is from the painting: for la_muse on vgg19_caffe, relu5_1's error was 60 % of a style
    loss normalised by the painting Gram's own size, so one layer decided what the network learnt
    and which one changed from painting to painting. Divided by the photos' own distance, every
    layer of every painting starts at 1 for an unchanged photo and 0 is the painting, like the
    independent measure (fast_style.measure). Measured once, on the batch ``photos`` or the mean
    over a list of photos of any sizes (no grad).
    """
    batches = [photos] if isinstance(photos, torch.Tensor) else list(photos)
    totals = [0.0] * len(layers)
    with torch.no_grad():
        for batch in batches:
            batch = batch if batch.dim() == 4 else batch.unsqueeze(0)
            feats = loss_net.extract(batch.to(style_grams[0].device), layers)
            for i, (layer, g) in enumerate(zip(layers, style_grams)):
                totals[i] += float(F.mse_loss(gram_matrix(feats[layer]), g.expand(batch.shape[0], -1, -1)))
    return [max(t / len(batches), 1e-30) for t in totals]


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

    def __init__(
        self,
        loss_net: LossNet,
        style_image: torch.Tensor,
        config: LossConfig,
        reference: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ):
        """``reference``: photos whose distance to the painting normalises each style layer
        (``config.normalize``): the training photos, or the photo being stylized."""
        super().__init__()
        config = config.for_loss_net(loss_net.name)
        self.loss_net = loss_net
        self.config = config
        if style_image.dim() == 3:
            style_image = style_image.unsqueeze(0)
        with torch.no_grad():
            feats = loss_net.extract(style_image, config.style_layers)
        for i, layer in enumerate(config.style_layers):
            self.register_buffer(f"style_gram_{i}", gram_matrix(feats[layer]))
        grams = self.style_grams
        if not config.normalize:
            self.style_scales = [1.0] * len(grams)
        elif reference is None:
            raise ValueError("loss.normalize needs reference photos")
        else:
            self.style_scales = photo_distances(loss_net, reference, grams, config.style_layers)
        # normalised: the weighted mean over layers (an unchanged photo scores 1); raw: the sum
        weights = config.style_layer_weights
        self.layer_weights = [w / sum(weights) for w in weights] if config.normalize else list(weights)

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
        c = cfg.content_weight * content_loss(feats[cfg.content_layer].float(), target.float(), cfg.normalize)
        grams = [gram_matrix(feats[layer]) for layer in cfg.style_layers]
        s = cfg.style_weight * style_loss(grams, self.style_grams, self.layer_weights, self.style_scales)
        t = cfg.tv_weight * tv_loss(output.float())
        return LossTerms(c, s, t, c + s + t)
