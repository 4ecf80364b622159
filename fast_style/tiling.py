"""Tiled inference that reproduces the whole-image output of :class:`ImageTransformNet`.

Running the network on tiles is not enough: every instance norm normalises with the mean and
variance of the *whole* feature map, so tiles normalised on their own statistics disagree at
the seams (and in colour). This module computes the exact whole-image result with bounded
activation memory:

1. The network is flattened into a list of per-layer steps (reflection pad, convolution,
   nearest upsample, instance norm, ReLU; residual sums are done between steps). Every step
   knows which input region an output region needs, so a tile is computed from exactly the
   input it depends on (its halo), and reflection padding is applied at the *global* border of
   each feature map, not at the tile's.
2. Statistics are gathered layer by layer. For each instance norm, in order, the steps before it
   are run tile by tile over its whole input map (earlier norms already have their statistics)
   and per-channel moments are accumulated in float64 (per-tile ``var_mean`` merged with Chan's
   formula). A tile partition of the map gives exactly the whole-map mean and variance.
3. Recomputing the full prefix for each of the 15 norms of the Johnson net would cost ~7
   forward passes, so the low-resolution activations (1/4 side, ``4*width`` channels) are
   cached: the encoder output (which becomes the residual stream ``x``) and one scratch map
   inside each residual block. Together they are ``2 * 4 * width`` channels at 1/16 of the
   pixels, i.e. ``width / 2`` floats = ``2 * width`` bytes per input pixel (64 B/px for the
   Johnson net's width 32: 6.9 GB at 12000x9000), a fraction of what a whole-image forward
   pass holds at its peak (~600 B/px measured); everything else is per tile. The whole run
   costs about 1.8 forward passes plus halos.

The result equals the whole-image output up to float32 summation order (errors ~1e-6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.checks import MIN_TILE, goes_tiled
from fast_style.models.transformer import ConditionalInstanceNorm2d, ConvLayer, ImageTransformNet, ResidualBlock

Region = tuple[tuple[int, int], tuple[int, int]]  # ((h0, h1), (w0, w1)), half-open, map coordinates
Size = tuple[int, int]


# --------------------------------------------------------------------------------------------
# steps: each maps an output region to the input region it needs, and computes one tile


class _Reflect:
    """Reflection padding of a whole map (``lo``/``hi`` per axis), evaluated on a tile."""

    def __init__(self, h: tuple[int, int], w: tuple[int, int]):
        self.pads = (h, w)

    def out_size(self, size: Size) -> Size:
        return tuple(n + lo + hi for n, (lo, hi) in zip(size, self.pads))  # type: ignore[return-value]

    @staticmethod
    def _source(j: int, lo: int, n: int) -> int:
        i = j - lo
        if i < 0:
            return -i
        return 2 * (n - 1) - i if i >= n else i

    def need(self, region: Region, size: Size) -> Region:
        out = []
        for (a, b), n, (lo, _) in zip(region, size, self.pads):
            src = [self._source(j, lo, n) for j in range(a, b)]
            out.append((min(src), max(src) + 1))
        return tuple(out)  # type: ignore[return-value]

    def __call__(self, x: torch.Tensor, src: Region, dst: Region, size: Size) -> torch.Tensor:
        pads = [0, 0, 0, 0]  # F.pad order: w_lo, w_hi, h_lo, h_hi
        for axis, ((a, b), (c, _), n, (lo, _)) in enumerate(zip(dst, src, size, self.pads)):
            dim = x.dim() - 2 + axis
            i0, i1 = max(a - lo, 0), min(b - lo, n)  # the part of the tile inside the map
            p0, p1 = i0 - (a - lo), (b - lo) - i1  # how far it sticks out of the map's border
            if p0 < i1 - i0 and p1 < i1 - i0:  # mirror images inside the tile: slice, then F.pad
                x = x.narrow(dim, i0 - c, i1 - i0)
                pads[2 - 2 * axis : 4 - 2 * axis] = [p0, p1]
            else:  # a tile thinner than its padding (tiny maps): gather index by index
                idx = torch.tensor([self._source(j, lo, n) - c for j in range(a, b)], device=x.device)
                x = x.index_select(dim, idx)
        return F.pad(x, pads, mode="reflect") if any(pads) else x


class _Conv:
    """A valid (unpadded) convolution; padding is the preceding :class:`_Reflect`."""

    def __init__(self, conv: nn.Conv2d):
        self.conv = conv
        self.k, self.s = conv.kernel_size[0], conv.stride[0]

    def out_size(self, size: Size) -> Size:
        return tuple((n - self.k) // self.s + 1 for n in size)  # type: ignore[return-value]

    def need(self, region: Region, size: Size) -> Region:
        return tuple((a * self.s, (b - 1) * self.s + self.k) for a, b in region)  # type: ignore[return-value]

    def __call__(self, x: torch.Tensor, src: Region, dst: Region, size: Size) -> torch.Tensor:
        return F.conv2d(x, self.conv.weight, self.conv.bias, stride=self.s)


class _Upsample:
    """Nearest-neighbour upsampling by 2."""

    def out_size(self, size: Size) -> Size:
        return tuple(2 * n for n in size)  # type: ignore[return-value]

    def need(self, region: Region, size: Size) -> Region:
        return tuple((a // 2, (b - 1) // 2 + 1) for a, b in region)  # type: ignore[return-value]

    def __call__(self, x: torch.Tensor, src: Region, dst: Region, size: Size) -> torch.Tensor:
        y = F.interpolate(x, scale_factor=2.0, mode="nearest")
        (a, b), (c, d) = dst
        return y[..., a - 2 * src[0][0] : b - 2 * src[0][0], c - 2 * src[1][0] : d - 2 * src[1][0]]


class _Pointwise:
    def out_size(self, size: Size) -> Size:
        return size

    def need(self, region: Region, size: Size) -> Region:
        return region


class _ReLU(_Pointwise):
    def __call__(self, x: torch.Tensor, src: Region, dst: Region, size: Size) -> torch.Tensor:
        return x.relu_()  # always follows a conv, whose output the tile owns


class _Moments:
    """Per-(image, channel) count, mean and sum of squared deviations, merged tile by tile in
    float64 (Chan et al.'s pairwise update), so the result is the whole map's."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        nb = x.shape[-1] * x.shape[-2]
        var, mean = torch.var_mean(x, dim=(-2, -1), correction=0)
        mean, m2 = mean.double(), var.double() * nb
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = nb, mean, m2
            return
        total = self.n + nb
        delta = mean - self.mean
        self.mean = self.mean + delta * (nb / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.n * nb / total)
        self.n = total

    def var(self) -> torch.Tensor:
        assert self.m2 is not None
        return self.m2 / self.n


class _Norm(_Pointwise):
    """Instance norm with statistics gathered over the whole map beforehand."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.scale: torch.Tensor | None = None  # (B, C, 1, 1): gamma / sqrt(var + eps)
        self.shift: torch.Tensor | None = None  # beta - mean * scale

    def set_stats(self, moments: _Moments, batch: int, style_weights: torch.Tensor | None = None) -> None:
        m = self.module
        if isinstance(m, ConditionalInstanceNorm2d):
            (gamma, beta), eps = m.affine(style_weights), m.norm.eps
        else:
            assert isinstance(m, nn.InstanceNorm2d)
            ones = torch.ones(moments.mean.shape[-1], device=moments.mean.device)  # type: ignore[union-attr]
            gamma = m.weight if m.weight is not None else ones
            beta = m.bias if m.bias is not None else torch.zeros_like(ones)
            eps = m.eps
        gamma = gamma.double().expand(batch, -1)
        beta = beta.double().expand(batch, -1)
        scale = gamma / torch.sqrt(moments.var() + eps)
        shift = beta - moments.mean * scale
        self.scale, self.shift = scale.float()[:, :, None, None], shift.float()[:, :, None, None]

    def __call__(self, x: torch.Tensor, src: Region, dst: Region, size: Size) -> torch.Tensor:
        assert self.scale is not None and self.shift is not None, "statistics not gathered yet"
        return x.mul_(self.scale).add_(self.shift)  # always follows a conv, whose output the tile owns


Step = _Reflect | _Conv | _Upsample | _ReLU | _Norm


def _is_norm(m: nn.Module) -> bool:
    return isinstance(m, ConditionalInstanceNorm2d) or (isinstance(m, nn.InstanceNorm2d) and m.affine)


def _flatten(module: nn.Module) -> list[Step]:
    """ConvLayer / ConvNormReLU / Sequential of them -> steps (no residual blocks inside)."""
    if isinstance(module, ConvLayer):
        pad, conv = module[0], module[1]
        assert isinstance(pad, nn.ReflectionPad2d) and isinstance(conv, nn.Conv2d)
        left, right, top, bottom = pad.padding
        return [_Reflect((top, bottom), (left, right)), _Conv(conv)]
    if _is_norm(module):
        return [_Norm(module)]
    if isinstance(module, nn.ReLU):
        return [_ReLU()]
    if isinstance(module, nn.Upsample):
        if module.mode != "nearest" or float(module.scale_factor) != 2.0:  # type: ignore[arg-type]
            raise ValueError(f"tiling supports nearest x2 upsampling only, not {module}")
        return [_Upsample()]
    if isinstance(module, nn.Sequential):
        return [s for child in module for s in _flatten(child)]
    raise ValueError(f"tiling does not know how to split {type(module).__name__}")


# --------------------------------------------------------------------------------------------
# the driver


def _spans(n: int, tile: int) -> list[tuple[int, int]]:
    """[0, n) cut into ceil(n / tile) nearly equal spans (no sliver at the end)."""
    k = max(1, math.ceil(n / max(1, tile)))
    cuts = [round(i * n / k) for i in range(k + 1)]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


@dataclass
class TileReport:
    """What a tiled run did (for tests and benchmarks)."""

    passes: int = 0
    tiles: int = 0
    cache_numel: int = 0


class _TiledRun:
    def __init__(self, model: ImageTransformNet, x: torch.Tensor, tile_size: int,
                 style_weights: torch.Tensor | None = None):
        self.model, self.x, self.tile, self.style = model, x, tile_size, style_weights
        self.batch = x.shape[0]
        self.report = TileReport()

    def run_pass(
        self,
        steps: list[Step],
        src: torch.Tensor,
        res: float,
        consume: Callable[[Region, torch.Tensor], None],
        limit: Size | None = None,
    ) -> None:
        """Compute the output map of ``steps`` applied to the whole map ``src`` tile by tile
        (only ``[0, limit)`` of it if given), handing each tile to ``consume(region, tile)``.

        ``res`` is the resolution of ``src`` relative to the (padded) image; output tiles are
        sized so that each covers about ``tile_size`` image pixels per side.
        """
        sizes: list[Size] = [tuple(src.shape[-2:])]  # type: ignore[list-item]
        for s in steps:
            sizes.append(s.out_size(sizes[-1]))
            res = res * 2 if isinstance(s, _Upsample) else res / (s.s if isinstance(s, _Conv) else 1)
        out_h, out_w = limit or sizes[-1]
        side = max(1, round(self.tile * res))
        self.report.passes += 1
        for hr in _spans(out_h, side):
            for wr in _spans(out_w, side):
                regions: list[Region] = [(hr, wr)]
                for s, size in zip(reversed(steps), reversed(sizes[:-1])):
                    regions.append(s.need(regions[-1], size))
                regions.reverse()
                (h0, h1), (w0, w1) = regions[0]
                t = src[..., h0:h1, w0:w1]
                for s, a, b, size in zip(steps, regions, regions[1:], sizes):
                    t = s(t, a, b, size)
                self.report.tiles += 1
                consume((hr, wr), t)

    def stage(
        self,
        steps: list[Step],
        src: torch.Tensor,
        res: float,
        consume: Callable[[Region, torch.Tensor], None],
        gather: _Moments | None = None,
        limit: Size | None = None,
    ) -> None:
        """Gather the statistics of every norm in ``steps`` (in order), then run them all.
        ``gather`` also collects the moments of the output (for the norm right after)."""
        for i, s in enumerate(steps):
            if isinstance(s, _Norm) and s.scale is None:
                moments = _Moments()
                self.run_pass(steps[:i], src, res, lambda _, t, m=moments: m.add(t))
                s.set_stats(moments, self.batch, self.style)

        def sink(region: Region, t: torch.Tensor) -> None:
            if gather is not None:
                gather.add(t)
            consume(region, t)

        self.run_pass(steps, src, res, sink, limit)

    def cache(self, like: torch.Tensor, channels: int, size: Size) -> torch.Tensor:
        buf = like.new_empty(self.batch, channels, *size)
        self.report.cache_numel += buf.numel()
        return buf

    def forward(self) -> torch.Tensor:
        model, x = self.model, self.x
        h, w = x.shape[-2:]
        pad_h, pad_w = max(8, h + (-h) % 4) - h, max(8, w + (-w) % 4) - w
        if not (pad_h < h and pad_w < w):
            raise ValueError("tiling needs an image at least 8 pixels on each side")
        # the network's own pad to a multiple of 4 (bottom/right, reflect), done lazily per tile
        encoder = [_Reflect((0, pad_h), (0, pad_w)), *_flatten(model.encoder)]
        *encoder, last_norm, last_relu = encoder
        assert isinstance(last_norm, _Norm) and isinstance(last_relu, _ReLU)
        conv_out = encoder[-1]
        assert isinstance(conv_out, _Conv)
        low = (h + pad_h) // 4, (w + pad_w) // 4
        stream = self.cache(x, conv_out.conv.out_channels, low)  # residual stream x, (B, 4w, H/4, W/4)

        def write(buf: torch.Tensor) -> Callable[[Region, torch.Tensor], None]:
            def put(region: Region, t: torch.Tensor) -> None:
                (a, b), (c, d) = region
                buf[..., a:b, c:d] = t

            return put

        moments = _Moments()
        self.stage(encoder, x, 1.0, write(stream), gather=moments)
        last_norm.set_stats(moments, self.batch, self.style)
        last_norm(stream, (), (), low).relu_()  # in place on the whole cache, no copy

        scratch: torch.Tensor | None = None
        for block in model.residuals:
            assert isinstance(block, ResidualBlock)
            first, second = _flatten(block.block[0]), _flatten(block.block[1:])  # conv-norm-relu, conv-norm
            norm1, relu1 = first[-2], first[-1]
            assert isinstance(norm1, _Norm) and isinstance(second[-1], _Norm)
            if scratch is None:
                scratch = self.cache(x, stream.shape[1], low)
            moments = _Moments()
            self.stage(first[:-2], stream, 0.25, write(scratch), gather=moments)
            norm1.set_stats(moments, self.batch, self.style)
            relu1(norm1(scratch, (), (), low), (), (), low)  # in place on the whole cache

            def add(region: Region, t: torch.Tensor) -> None:
                (a, b), (c, d) = region
                stream[..., a:b, c:d] += t

            # the second conv is run twice (statistics, then the sum) rather than cached: the
            # sum cannot be written in place while neighbouring tiles still read their halos
            self.stage(second, scratch, 0.25, add)

        out = x.new_empty(self.batch, 3, h, w)

        def put_out(region: Region, t: torch.Tensor) -> None:
            (a, b), (c, d) = region
            out[..., a:b, c:d] = t.clamp_(0.0, 1.0)

        self.stage(_flatten(model.decoder), stream, 0.25, put_out, limit=(h, w))
        return out


@torch.inference_mode()
def stylize_tiled(
    model: ImageTransformNet,
    x: torch.Tensor,
    tile_size: int,
    style: torch.Tensor | None = None,
    report: TileReport | None = None,
) -> torch.Tensor:
    """``model.stylize(x, style)`` computed in tiles of about ``tile_size`` pixels per side,
    with whole-image instance-norm statistics (see the module docstring). ``x`` is (B, 3, H, W)."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError("stylize_tiled takes a (B, 3, H, W) batch")
    if tile_size < MIN_TILE:
        raise ValueError(f"tile_size must be >= {MIN_TILE}, got {tile_size}")
    weights = None
    if style is not None:
        weights = model.style_weights(style, x)
    elif model.n_styles > 1:
        raise ValueError("this is a multi-style network: pass style= (an index or mixing weights)")
    run = _TiledRun(model, x, tile_size, weights)
    y = run.forward()
    if report is not None:
        report.passes, report.tiles, report.cache_numel = run.report.passes, run.report.tiles, run.report.cache_numel
    return y


class TiledNet:
    """Backend (:class:`fast_style.backends.Backend`): images that :func:`~fast_style.checks.goes_tiled` run through
    :func:`stylize_tiled` (eager torch: the exported graph has no place for the per-layer
    whole-image statistics), the others through ``whole``. ``note``, when given, hears once that
    tiles run on torch while ``whole`` is onnxruntime."""

    def __init__(self, whole: Callable[[torch.Tensor], torch.Tensor], model: ImageTransformNet, tile_size: int,
                 style_weights: torch.Tensor | None = None, note: Callable[[str], None] | None = None):
        self.whole, self.model, self.tile_size = whole, model, tile_size
        self.style_weights, self.note = style_weights, note

    @property
    def name(self) -> str:
        """What runs the whole images now (``backend=auto`` may move from torch to onnxruntime)."""
        return getattr(self.whole, "name", "torch")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        h, w = batch.shape[-2:]
        if not goes_tiled(self.tile_size, int(w), int(h)):
            return self.whole(batch)
        if self.note is not None and self.name == "onnxruntime":
            self.note(f"tile_size={self.tile_size}: larger images run tiled on torch (the whole-image "
                      "norm statistics are gathered layer by layer, outside the exported graph)")
        return stylize_tiled(self.model, batch, self.tile_size, self.style_weights)


__all__ = ["TileReport", "TiledNet", "stylize_tiled"]
