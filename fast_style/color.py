"""Colour preservation (Gatys et al. 2016, "Preserving color in neural artistic style transfer").

Two ways to keep a photo's colours while taking a painting's strokes:

- ``luminance``: stylize, then keep only the stylized luminance and put back the photo's chroma
  (YCbCr, BT.601 full range as in JPEG). Exact and free at inference time.
- ``histogram``: a linear colour transfer that gives one image the mean and covariance of
  another's RGB distribution (Cholesky form). Applied to the style image before training or
  optimizing, the network never sees the painting's palette; applied to an output, it pulls the
  output's colours back to the photo's.

Where each applies: ``Stylizer(preserve_color=...)`` on outputs (both modes);
``scripts/optimize.py preserve_color=`` before optimizing (``histogram``: the style image gets
the photo's colour statistics; ``luminance``: Gatys' luminance-only transfer, see
:func:`fast_style.optimize.color_preserving_style`); training ``style.preserve_color=histogram``
(the style image gets the colour statistics of a sample of the training photos,
:func:`fast_style.styles.match_training_colors`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from fast_style.errors import ConfigError

# RGB -> YCbCr (offsets of 0.5 on Cb/Cr omitted: they cancel in the round trip)
_RGB2YCC = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
_YCC2RGB = torch.linalg.inv(_RGB2YCC)
MODES = ("luminance", "histogram")


def check_mode(mode: str | None) -> str | None:
    """``preserve_color``: None (off), ``luminance`` or ``histogram``; else one ConfigError line
    (stylize and optimize take both; training refuses luminance itself, see fast_style.styles)."""
    if mode not in (None, *MODES):
        raise ConfigError(f"preserve_color={mode!r}: choose {' or '.join(MODES)} (or null)")
    return mode


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> Y, Cb, Cr (Cb/Cr centred on 0)."""
    return torch.einsum("ij,...jhw->...ihw", _RGB2YCC.to(x), x)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", _YCC2RGB.to(x), x)


def preserve_luminance(stylized: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Stylized luminance + the photo's chroma; the photo is resized if sizes differ."""
    if photo.shape[-2:] != stylized.shape[-2:]:
        photo = F.interpolate(photo.reshape(-1, *photo.shape[-3:]), size=stylized.shape[-2:], mode="bilinear",
                              align_corners=False, antialias=True).reshape(*photo.shape[:-2], *stylized.shape[-2:])
    y = rgb_to_ycbcr(stylized)[..., :1, :, :]
    cbcr = rgb_to_ycbcr(photo)[..., 1:, :, :]
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=-3)).clamp(0, 1)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> (..., 1, H, W) luminance Y (BT.601)."""
    return rgb_to_ycbcr(x)[..., :1, :, :]


def grey(y: torch.Tensor) -> torch.Tensor:
    """A luminance (..., 1, H, W), or the luminance of an RGB image, as a 3-channel grey image:
    what a loss network that expects RGB sees in Gatys' luminance-only transfer."""
    if y.shape[-3] == 3:
        y = luminance(y)
    return y.expand(*y.shape[:-3], 3, *y.shape[-2:])


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style's luminance with the content's luminance mean and standard deviation, as a grey
    (..., 3, H, W) image: Gatys et al. 2016's luminance histogram matching,
    L_s' = sigma_c / sigma_s (L_s - mu_s) + mu_c, so the style's brightness and contrast do not
    fight the photo's."""
    ls, lc = luminance(style).double(), luminance(content).double()
    matched = (ls - ls.mean()) * (lc.std() / ls.std().clamp_min(1e-6)) + lc.mean()
    return grey(matched.to(style.dtype).clamp(0, 1))


def color_stats(images: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB mean (3, 1) and covariance (3, 3) of all pixels of ``images`` (each (3, H, W) or a
    (B, 3, H, W) batch) pooled together, in float64. Sums are accumulated image by image, so a
    sample of training photos never needs to be held at once."""
    n, s1, s2 = 0, torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64)
    for x in images:
        pixels = x.detach().to("cpu", torch.float64).movedim(-3, 0).reshape(3, -1)
        n += pixels.shape[1]
        s1 += pixels.sum(dim=1, keepdim=True)
        s2 += pixels @ pixels.T
    if n == 0:
        raise ValueError("color_stats needs at least one pixel")
    mean = s1 / n
    cov = s2 / n - mean @ mean.T + 1e-5 * torch.eye(3, dtype=torch.float64)
    return mean, cov


def _mean_cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = x.reshape(3, -1).double()
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    cov = centred @ centred.T / pixels.shape[1] + 1e-5 * torch.eye(3, dtype=torch.float64, device=x.device)
    return mean, cov


def match_color_stats(source: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Give ``source`` ((B,) 3, H, W) the RGB ``mean`` (3, 1) and covariance ``cov`` (3, 3), e.g.
    those of many photos (:func:`color_stats`). Each image of a batch is mapped on its own.

    x' = L_t L_s^-1 (x - mu_s) + mu_t with Cholesky factors L of the covariances: the linear map
    that whitens the source colours and re-colours them with the target's.
    """
    if source.dim() == 4:
        return torch.stack([match_color_stats(s, mean, cov) for s in source])
    mu_s, cov_s = _mean_cov(source)
    mu_t, cov_t = mean.to(mu_s), cov.to(cov_s)
    transform = torch.linalg.cholesky(cov_t) @ torch.linalg.inv(torch.linalg.cholesky(cov_s))
    out = transform @ (source.reshape(3, -1).double() - mu_s) + mu_t
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


def match_color(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Give ``source`` (3, H, W) the RGB mean and covariance of ``target`` (3, H', W')
    (batches: image i of ``source`` takes image i of a 4-D ``target``, or the one 3-D target)."""
    if source.dim() == 4:
        return torch.stack([match_color(s, target[i] if target.dim() == 4 else target) for i, s in enumerate(source)])
    return match_color_stats(source, *_mean_cov(target))
