"""ImageTransformNet: the feed-forward network of Johnson et al. (2016) with the known fixes.

Fixes over the paper, all widely adopted since:
- reflection padding instead of zero padding (no dark borders),
- instance norm instead of batch norm (Ulyanov et al. 2016: much better stylization),
- nearest-neighbour upsampling + conv instead of transposed conv (no checkerboard artefacts,
  Odena et al. 2016).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture hyper-parameters; stored in every checkpoint so stylize needs no flags."""

    width: int = 32  # channels of the first conv; the encoder doubles it twice (32 -> 64 -> 128)
    n_residual: int = 5

    def to_dict(self) -> dict:
        return asdict(self)


class ConvLayer(nn.Sequential):
    """Reflection pad + conv, so every conv keeps the border content instead of zeros."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class ConvNormReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, upsample: bool = False):
        layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
        layers += [ConvLayer(c_in, c_out, kernel, stride), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU()]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convs with instance norm; no ReLU after the sum (Gross & Wilber's variant)."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            ConvNormReLU(channels, channels, 3),
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ImageTransformNet(nn.Module):
    """Maps an RGB image in [0, 1] to a stylized RGB image of exactly the same height and width.

    The two stride-2 convs need sides divisible by 4; other sizes are reflection-padded up to
    the next multiple of 4 (at least 8) and the output is cropped back, so any size (odd ones,
    even 1x1) works.
    The output is not clamped during training (clamping would kill gradients at the borders of
    the range); :meth:`stylize` clamps for display.
    """

    def __init__(self, config: TransformerConfig | None = None):
        super().__init__()
        self.config = config or TransformerConfig()
        w, n = self.config.width, self.config.n_residual
        if w < 1 or n < 0:
            raise ValueError(f"width must be >= 1 and n_residual >= 0, got {w}, {n}")
        self.encoder = nn.Sequential(
            ConvNormReLU(3, w, 9),
            ConvNormReLU(w, 2 * w, 3, stride=2),
            ConvNormReLU(2 * w, 4 * w, 3, stride=2),
        )
        self.residuals = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(n)])
        self.decoder = nn.Sequential(
            ConvNormReLU(4 * w, 2 * w, 3, upsample=True),
            ConvNormReLU(2 * w, w, 3, upsample=True),
            ConvLayer(w, 3, 9),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Sides must be multiples of 4 (two stride-2 convs) and >= 8 (the 9x9 conv's reflection
        # pad of 4 must be smaller than the side).
        # Always padded (a no-op copy of a 3-channel input when sizes already fit), so that an
        # exported graph (ONNX, torch.export) keeps this step for every size.
        pad_h, pad_w = max(8, h + (-h) % 4) - h, max(8, w + (-w) % 4) - w
        # reflection needs pad < side; replicate covers images only a few pixels wide
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        y = self.decoder(self.residuals(self.encoder(x)))
        return y[..., :h, :w]

    @torch.inference_mode()
    def stylize(self, x: torch.Tensor) -> torch.Tensor:
        """Inference path: no autograd bookkeeping, output clamped to the valid [0, 1] range."""
        return self(x).clamp_(0.0, 1.0)
