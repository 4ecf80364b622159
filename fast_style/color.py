"""Colour preservation (Gatys et al. 2016, "Preserving color in neural artistic style transfer").

Two ways to keep a photo's colours while taking a painting's strokes:

- ``luminance``: stylize, then keep only the stylized luminance and put back the photo's chroma
  (YCbCr, BT.601 full range as in JPEG). Exact and free at inference time.
- ``histogram``: a linear colour transfer that gives one image the mean and covariance of
  another's RGB distribution (Cholesky form). Applied to the style image before training or
  optimizing, the network never sees the painting's palette; applied to an output, it pulls the
  output's colours back to the photo's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# RGB -> YCbCr (offsets of 0.5 on Cb/Cr omitted: they cancel in the round trip)
_RGB2YCC = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
_YCC2RGB = torch.linalg.inv(_RGB2YCC)
MODES = ("luminance", "histogram")


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


def _mean_cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = x.reshape(3, -1).double()
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    cov = centred @ centred.T / pixels.shape[1] + 1e-5 * torch.eye(3, dtype=torch.float64, device=x.device)
    return mean, cov


def match_color(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Give ``source`` (3, H, W) the RGB mean and covariance of ``target`` (3, H', W').

    x' = L_t L_s^-1 (x - mu_s) + mu_t with Cholesky factors L of the covariances: the linear map
    that whitens the source colours and re-colours them with the target's.
    """
    if source.dim() == 4:
        return torch.stack([match_color(s, target[i] if target.dim() == 4 else target) for i, s in enumerate(source)])
    mu_s, cov_s = _mean_cov(source)
    mu_t, cov_t = _mean_cov(target)
    transform = torch.linalg.cholesky(cov_t) @ torch.linalg.inv(torch.linalg.cholesky(cov_s))
    out = transform @ (source.reshape(3, -1).double() - mu_s) + mu_t
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)
