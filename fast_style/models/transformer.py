"""ImageTransformNet: the feed-forward network of Johnson et al. (2016) with the known fixes.

Fixes over the paper, all widely adopted since:
- reflection padding instead of zero padding (no dark borders),
- instance norm instead of batch norm (Ulyanov et al. 2016: much better stylization),
- nearest-neighbour upsampling + conv instead of transposed conv (no checkerboard artefacts,
  Odena et al. 2016).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture hyper-parameters; stored in every checkpoint so stylize needs no flags."""

    width: int = 32  # channels of the first conv; the encoder doubles it twice (32 -> 64 -> 128)
    n_residual: int = 5
    n_styles: int = 1  # > 1: conditional instance norm, one (scale, shift) per style

    def to_dict(self) -> dict:
        return asdict(self)


# The output conv's initial weights and its learning rate, relative to the rest: the network
# computes its output as if in 0-255 pixel units and divides by 255 (docs/QUALITY.md, "output step").
OUTPUT_SCALE = 1 / 255


class ConvLayer(nn.Sequential):
    """Reflection pad + conv, so every conv keeps the border content instead of zeros."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one (scale, shift) per style (Dumoulin et al. 2017).

    ``forward(x, style_weights)``: the (B, n_styles) weights mix the styles' parameters (a
    one-hot row is exactly that style, other rows interpolate between styles). They are an
    argument, not state: a network holds no "current style", so one call cannot leak its style
    into the next, and the ONNX export feeds them in as a graph input.
    """

    def __init__(self, channels: int, n_styles: int):
        super().__init__()
        self.takes_style = True  # StyledSequential hands it the style weights
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.weight = nn.Parameter(torch.ones(n_styles, channels))
        self.bias = nn.Parameter(torch.zeros(n_styles, channels))

    def affine(self, style_weights: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: UP045
        """(gamma, beta), each (B, channels): the styles' scales and shifts mixed by ``style_weights``."""
        if style_weights is None:
            raise RuntimeError("a multi-style network needs a style: call the network with style=...")
        w = style_weights.to(self.weight)
        return w @ self.weight, w @ self.bias

    def forward(self, x: torch.Tensor, style_weights: Optional[torch.Tensor] = None) -> torch.Tensor:  # noqa: UP045
        gamma, beta = self.affine(style_weights)
        return self.norm(x) * gamma[:, :, None, None] + beta[:, :, None, None]


class StyledSequential(nn.Sequential):
    """``nn.Sequential`` whose ``forward(x, style_weights)`` hands the weights to the layers that
    take them (those with a ``takes_style`` attribute: conditional norms, styled blocks) and calls
    the others with ``x`` alone. A plain subclass: the state-dict keys are nn.Sequential's.

    Why an attribute and not ``isinstance``: TorchScript (``export_torchscript``) resolves
    ``hasattr`` on a submodule when it compiles the loop, but cannot name module classes."""

    def __init__(self, *layers: nn.Module):
        super().__init__(*layers)
        self.takes_style = True

    def forward(self, x: torch.Tensor, style_weights: Optional[torch.Tensor] = None) -> torch.Tensor:  # noqa: UP045
        return self.run_layers(x, style_weights)

    def run_layers(self, x: torch.Tensor, style_weights: Optional[torch.Tensor] = None) -> torch.Tensor:  # noqa: UP045
        """Every layer in order (a method of its own: subclasses that override forward call it,
        since TorchScript has no ``super()``)."""
        for layer in self:
            if hasattr(layer, "takes_style"):
                x = layer(x, style_weights)
            else:
                x = layer(x)
        return x


def make_norm(channels: int, n_styles: int = 1) -> nn.Module:
    """Plain affine instance norm for one style (the classic state-dict layout), else conditional."""
    return nn.InstanceNorm2d(channels, affine=True) if n_styles == 1 else ConditionalInstanceNorm2d(channels, n_styles)


def upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:  # noqa: UP045
    """``conv2d(reflect_pad_1(upsample_nearest_x2(x)), weight, bias)`` for a 3x3 ``weight``, without upsampling.

    Every output pixel of a 3x3 conv over a nearest-upsampled image sees only a 2x2 patch of
    distinct input pixels, so each of the four output phases is a 2x2 conv of ``x`` whose taps
    are sums of the 3x3 taps (polyphase decomposition), and reflection padding of the upsampled
    image is replicate padding of ``x``. Same parameters, same result to float rounding, 16
    instead of 36 multiply-adds per output pixel and channel, and no 4x-sized intermediate.
    """
    w = weight  # (O, I, 3, 3)
    # on each axis, phase 0 reads input offsets (-1, 0) with taps (k0, k1 + k2) and phase 1
    # reads (0, +1) with taps (k0 + k1, k2)
    r0 = torch.stack([w[:, :, 0], w[:, :, 1] + w[:, :, 2]], 2)
    r1 = torch.stack([w[:, :, 0] + w[:, :, 1], w[:, :, 2]], 2)
    k00 = torch.stack([r0[..., 0], r0[..., 1] + r0[..., 2]], -1)
    k01 = torch.stack([r0[..., 0] + r0[..., 1], r0[..., 2]], -1)
    k10 = torch.stack([r1[..., 0], r1[..., 1] + r1[..., 2]], -1)
    k11 = torch.stack([r1[..., 0] + r1[..., 1], r1[..., 2]], -1)
    o = w.shape[0]
    b4 = bias.repeat(4) if bias is not None else None
    # replicate padding written as concatenation: torch.compile's backward of replication_pad2d
    # trips a stride assertion in torch 2.14 (training with trainer.compile)
    xp = torch.cat([x[:, :, :1], x, x[:, :, -1:]], 2)
    xp = torch.cat([xp[:, :, :, :1], xp, xp[:, :, :, -1:]], 3)
    y = F.conv2d(xp, torch.cat([k00, k01, k10, k11]), b4)  # (N, 4O, H+1, W+1)
    h, w_ = x.shape[-2], x.shape[-1]
    top = torch.stack([y[:, :o, :h, :w_], y[:, o : 2 * o, :h, 1:]], -1)  # even output rows: (N, O, H, W, 2)
    bottom = torch.stack([y[:, 2 * o : 3 * o, 1:, :w_], y[:, 3 * o :, 1:, 1:]], -1)
    return torch.stack([top, bottom], 3).reshape(x.shape[0], o, 2 * h, 2 * w_)


class ConvNormReLU(StyledSequential):
    """[nearest upsample x2 +] reflection-padded conv, instance norm, ReLU."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, upsample: bool = False, n_styles: int = 1
    ):
        layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
        layers += [ConvLayer(c_in, c_out, kernel, stride), make_norm(c_out, n_styles), nn.ReLU()]
        super().__init__(*layers)


class UpsampleConvNormReLU(ConvNormReLU):
    """Nearest upsample x2 + 3x3 conv + norm + ReLU, computed by :func:`upsample_conv`.

    The layers stay (Upsample, ConvLayer, norm, ReLU), so the state dict is the classic one;
    ``fast_upsample = False`` runs them one by one (the textbook computation, the benchmark's
    reference).
    """

    def __init__(self, c_in: int, c_out: int, n_styles: int = 1):
        super().__init__(c_in, c_out, 3, upsample=True, n_styles=n_styles)
        self.fast_upsample = True

    def forward(self, x: torch.Tensor, style_weights: Optional[torch.Tensor] = None) -> torch.Tensor:  # noqa: UP045
        if not self.fast_upsample:
            return self.run_layers(x, style_weights)
        conv = self[1][1]
        y = upsample_conv(x, conv.weight, conv.bias)
        if hasattr(self[2], "takes_style"):  # the norm; indexed each time: TorchScript cannot bind a module
            y = self[2](y, style_weights)
        else:
            y = self[2](y)
        return self[3](y)


class ResidualBlock(nn.Module):
    """Two 3x3 convs with instance norm; no ReLU after the sum (Gross & Wilber's variant)."""

    def __init__(self, channels: int, n_styles: int = 1):
        super().__init__()
        self.takes_style = True
        self.block = StyledSequential(
            ConvNormReLU(channels, channels, 3, n_styles=n_styles),
            ConvLayer(channels, channels, 3),
            make_norm(channels, n_styles),
        )

    def forward(self, x: torch.Tensor, style_weights: Optional[torch.Tensor] = None) -> torch.Tensor:  # noqa: UP045
        return x + self.block(x, style_weights)


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
        w, n, s = self.config.width, self.config.n_residual, self.config.n_styles
        self.n_styles = s  # a plain int, so TorchScript can read it in forward
        if w < 1 or n < 0 or s < 1:
            raise ValueError(f"width and n_styles must be >= 1 and n_residual >= 0, got {w}, {n}, {s}")
        self.encoder = StyledSequential(
            ConvNormReLU(3, w, 9, n_styles=s),
            ConvNormReLU(w, 2 * w, 3, stride=2, n_styles=s),
            ConvNormReLU(2 * w, 4 * w, 3, stride=2, n_styles=s),
        )
        self.residuals = StyledSequential(*[ResidualBlock(4 * w, n_styles=s) for _ in range(n)])
        self.decoder = StyledSequential(
            UpsampleConvNormReLU(4 * w, 2 * w, n_styles=s),
            UpsampleConvNormReLU(2 * w, w, n_styles=s),
            ConvLayer(w, 3, 9),
        )
        # Start (and, in training, step: fast_style.train.build_optimizer) the output conv as in a
        # network that paints in 0-255 units like Johnson et al.'s: its first images are a dark
        # near-uniform grey instead of +-0.4 noise over [0, 1].
        with torch.no_grad():
            for p in self.output_parameters():
                p.mul_(OUTPUT_SCALE)

    def output_parameters(self) -> list[nn.Parameter]:
        """The weights of the conv that writes the pixels (see OUTPUT_SCALE)."""
        return list(self.decoder[-1].parameters())

    @torch.jit.unused
    def style_weights(self, style, x):  # noqa: ANN001, ANN201 - untyped on purpose: TorchScript parses the signature
        """(B, n_styles) mixing weights for ``style`` (an index, a list of per-image indices, or
        (n_styles,) / (B, n_styles) weights) and the batch ``x``: what :meth:`run_styled` takes."""
        n = self.config.n_styles
        if n == 1:
            raise ValueError("style= is only for multi-style networks (model.n_styles > 1)")
        if isinstance(style, int) or (isinstance(style, list) and all(isinstance(i, int) for i in style)):
            idx = torch.as_tensor(style).reshape(-1)
            if idx.min() < 0 or idx.max() >= n:
                raise ValueError(f"style index out of range for {n} styles: {style}")
            weights = torch.nn.functional.one_hot(idx, n).float()
        else:
            weights = torch.as_tensor(style, dtype=torch.float32)
            if weights.dim() == 1:
                weights = weights.unsqueeze(0)
            if weights.shape[-1] != n:
                raise ValueError(f"style weights need {n} entries, got shape {tuple(weights.shape)}")
        if weights.shape[0] == 1:
            weights = weights.expand(x.shape[0], n)
        return weights

    def forward(self, x: torch.Tensor, style: Optional[torch.Tensor] = None) -> torch.Tensor:  # noqa: UP045
        """``style`` only for multi-style networks: an index, a list of per-image indices, or
        mixing weights of shape (n_styles,) or (B, n_styles)."""
        weights: Optional[torch.Tensor] = None  # noqa: UP045
        if style is not None:
            weights = self.style_weights(style, x)
        elif self.n_styles > 1:
            raise ValueError("this is a multi-style network: pass style= (an index or mixing weights)")
        return self.run_styled(x, weights)

    def run_styled(self, x: torch.Tensor, style_weights: Optional[torch.Tensor] = None) -> torch.Tensor:  # noqa: UP045
        """The network for (B, n_styles) ``style_weights`` as :meth:`style_weights` makes them
        (None for a single-style network): pad, run, crop. Separate from :meth:`forward` so that
        the ONNX export can feed the weights in as a graph input, unchecked."""
        h, w = x.shape[-2:]
        # Sides must be multiples of 4 (two stride-2 convs) and >= 8 (the 9x9 conv's reflection
        # pad of 4 must be smaller than the side).
        # Always padded (a no-op copy of a 3-channel input when sizes already fit), so that an
        # exported graph (ONNX, torch.export) keeps this step for every size.
        pad_h, pad_w = max(8, h + (-h) % 4) - h, max(8, w + (-w) % 4) - w
        # reflection needs pad < side; replicate covers images only a few pixels wide
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        y = self.decoder(self.residuals(self.encoder(x, style_weights), style_weights), style_weights)
        return y[..., :h, :w]

    @torch.inference_mode()
    def stylize(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Inference path: no autograd bookkeeping, output clamped to the valid [0, 1] range."""
        return self(x, style).clamp_(0.0, 1.0)


def extend_styles(model: ImageTransformNet, n_new: int) -> ImageTransformNet:
    """A copy of multi-style ``model`` with ``n_new`` more styles (fine-tuning a new style in).

    Every conv weight is copied; every conditional instance norm gets ``n_new`` more rows of
    (scale, shift), each initialised to the mean of the existing rows (a neutral starting style).
    """
    if model.config.n_styles < 2:
        raise ValueError("only a multi-style network (n_styles > 1) can be extended with more styles")
    config = TransformerConfig(model.config.width, model.config.n_residual, model.config.n_styles + n_new)
    bigger = ImageTransformNet(config)
    old = model.state_dict()
    new_state = {}
    for name, module in bigger.named_modules():
        if isinstance(module, ConditionalInstanceNorm2d):
            for leaf in ("weight", "bias"):
                rows = old[f"{name}.{leaf}"]
                new_state[f"{name}.{leaf}"] = torch.cat([rows, rows.mean(0, keepdim=True).expand(n_new, -1)])
    bigger.load_state_dict({**old, **new_state})
    return bigger.to(next(model.parameters()).device)
