"""Export a trained network for deployment: ONNX (onnxruntime, mobile) or TorchScript (C++/libtorch).

Both keep batch, height and width dynamic: the network pads any size to a multiple of 4 and
crops back, and that logic is exported with symbolic shapes rather than frozen at the example
size. The exported model maps RGB in [0, 1] (N, 3, H, W) to the stylized image, unclamped
(clamp to [0, 1] on display, as ``ImageTransformNet.stylize`` does). Multi-style networks take
a second input, the (N, n_styles) style weights (one-hot = one style, else a mix).
:mod:`fast_style.onnx_backend` reuses :func:`onnx_bytes` for Stylizer's onnxruntime backend.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.checkpoint import check_output_file, load_checkpoint, model_from_checkpoint, resolve_checkpoint
from fast_style.errors import ConfigError, FastStyleError
from fast_style.fileio import atomic_write
from fast_style.models import ImageTransformNet
from fast_style.models.transformer import ConvLayer

FORMATS = ("onnx", "torchscript")


class _PolyphaseOutputConv(nn.Module):
    """The network's last layer (reflection pad + k x k conv to 3 channels, stride 1) as a stride-2
    conv to 12 channels followed by a pixel shuffle: the same sums, taps and rounding-level result.

    Why: onnxruntime's CPU convolutions work on channel blocks of 8 or 16 (the SIMD width), so a
    conv with 3 outputs at full resolution does 3 useful lanes of 16 and took a quarter of the
    whole network's time. Output pixel (2i + a, 2j + b) of the conv is output (i, j) of a stride-2
    conv whose (k + 1) x (k + 1) kernel holds the k x k taps shifted by (a, b); the four phases
    side by side are 12 output channels, and depth-to-space interleaves them back. Valid because
    the network only ever runs this layer on even sides (it pads images to multiples of 4).
    Measured in docs/PERFORMANCE.md; exported graphs only (eager torch gains nothing from it).
    """

    def __init__(self, layer: ConvLayer):
        super().__init__()
        conv = layer[1]
        w = conv.weight.detach()
        o, i, k, _ = w.shape
        phased = w.new_zeros(o, 2, 2, i, k + 1, k + 1)  # pixel_shuffle reads channel c * 4 + a * 2 + b
        for a in (0, 1):
            for b in (0, 1):
                phased[:, a, b, :, a : a + k, b : b + k] = w
        self.register_buffer("weight", phased.reshape(4 * o, i, k + 1, k + 1))
        self.register_buffer("bias", conv.bias.detach().repeat_interleave(4) if conv.bias is not None else None)
        self.pad = k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, stride=2), 2)


def _for_export(model: ImageTransformNet) -> ImageTransformNet:
    """A float32 CPU copy in eval mode with the output conv in its polyphase form (swapped into the
    copy: never into the caller's network)."""
    net = copy.deepcopy(model).float().cpu().eval()
    last = net.decoder[-1]
    if isinstance(last, ConvLayer) and last[1].stride == (1, 1) and last[1].kernel_size[0] % 2 == 1:
        net.decoder[-1] = _PolyphaseOutputConv(last)
    return net


class _Exportable(nn.Module):
    """``forward(image)`` of a single-style network, optionally clamped to [0, 1] in the graph."""

    def __init__(self, net: ImageTransformNet, clamp: bool):
        super().__init__()
        self.net, self.clamp = net, clamp

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        y = self.net(image)
        return y.clamp(0.0, 1.0) if self.clamp else y


class _ExportableMultiStyle(_Exportable):
    """``forward(image, style_weights)``: the (B, n_styles) mixing weights are a graph input, so one
    exported file serves every style and every mix (a baked-in choice would need one per mix)."""

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = self.net.run_styled(image, style_weights)
        return y.clamp(0.0, 1.0) if self.clamp else y


EXPORTERS = ("dynamo", "torchscript")


def onnx_bytes(model: ImageTransformNet, opset: int = 18, clamp: bool = False, exporter: str = "dynamo") -> bytes:
    """The network as one self-contained ONNX file (weights inside, no external-data sidecar).

    Dynamic batch/height/width. Inputs: ``image`` (N, 3, H, W) and, for multi-style networks,
    ``style_weights`` (N, n_styles); output ``stylized``, clamped to [0, 1] when ``clamp``.

    ``exporter``: ``dynamo`` is torch.onnx's torch.export-based exporter (symbolic shapes with
    checked ranges; what ``scripts/export.py`` writes). ``torchscript`` is its older tracing
    exporter: about 10x faster for this network (1.3 s against 12.6 s plus 1.8 s to import
    onnxscript, on 2 loaded cores) and the same outputs to the bit on the sizes tried, but a trace
    records the Python branches on sizes as taken by the example (right for sides >= 8, which is
    all the onnxruntime backend sends it), and torch marks that exporter deprecated. So
    :mod:`fast_style.onnx_backend` uses it first for its cache, checks the graph against the
    network, and falls back to ``dynamo``.
    """
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter={exporter!r}: choose one of {', '.join(EXPORTERS)}")
    if exporter == "dynamo":
        try:
            import onnxscript  # noqa: F401  (the exporter needs it; say so clearly if missing)
        except ImportError:
            raise FastStyleError(
                "ONNX export needs onnx and onnxscript: pip install onnx onnxscript onnxruntime") from None
    net = _for_export(model)
    example = torch.rand(1, 3, 37, 50)  # sides not multiples of 4: the padding path is traced
    multi = net.config.n_styles > 1
    names = ["image", "style_weights"] if multi else ["image"]
    wrapper: nn.Module = _ExportableMultiStyle(net, clamp) if multi else _Exportable(net, clamp)
    args: tuple[torch.Tensor, ...] = (
        (example, torch.full((1, net.config.n_styles), 1.0 / net.config.n_styles)) if multi else (example,)
    )
    with warnings.catch_warnings():
        # the exporters' deprecation/advice/tracer warnings are not the user's business
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            import io

            axes = {"image": {0: "batch", 2: "height", 3: "width"}, "stylized": {0: "batch", 2: "height", 3: "width"}}
            if multi:
                axes["style_weights"] = {0: "batch"}
            buffer = io.BytesIO()
            torch.onnx.export(
                wrapper, args, buffer, dynamo=False, input_names=names, output_names=["stylized"],
                dynamic_axes=axes, opset_version=opset, verbose=False,
            )
            return buffer.getvalue()
        batch = torch.export.Dim("batch", min=1, max=1024)
        dims = {0: batch, 2: torch.export.Dim("height", min=8, max=16384),
                3: torch.export.Dim("width", min=8, max=16384)}
        shapes: dict[str, object] = {"image": dims, "style_weights": {0: batch}} if multi else {"image": dims}
        program = torch.onnx.export(
            wrapper, args, None, dynamic_shapes=shapes, input_names=names, output_names=["stylized"],
            opset_version=opset, verbose=False, external_data=False,
        )
    return program.model_proto.SerializeToString()


def export_onnx(model: ImageTransformNet, path: Path, opset: int = 18) -> Path:
    """Write :func:`onnx_bytes` (unclamped output) atomically to ``path``."""
    data = onnx_bytes(model, opset)
    with atomic_write(path) as f:
        f.write(data)
    return path


def export_torchscript(model: ImageTransformNet, path: Path) -> Path:
    """Scripted (not traced), so the size-dependent padding stays dynamic; written atomically
    through the one write path (which also refuses the shipped networks' folder)."""
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the libtorch route
        torch.jit.save(torch.jit.script(model.eval()), buffer)
    with atomic_write(path) as f:
        f.write(buffer.getbuffer())
    return path


def export_checkpoint(
    ckpt: str | os.PathLike, fmt: str, output: str | os.PathLike | None = None, overwrite: bool = False
) -> Path:
    """Export the network of a fast-style checkpoint; default output next to it (.onnx / .ts.pt).

    The output is checked before the export (:func:`fast_style.checkpoint.check_output_file`):
    never the checkpoint itself (resolved paths: ``ckpt=starry_night`` is the shipped file), never
    a shipped network, never a trained checkpoint unless ``overwrite``. A shipped name's default
    output goes to the working folder, not into the package."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}: choose one of {', '.join(FORMATS)}")
    source = resolve_checkpoint(ckpt)
    suffix = ".onnx" if fmt == "onnx" else ".ts.pt"
    if output:
        out = Path(output)
    elif source != Path(ckpt).expanduser():  # a shipped name: next to the command, not inside the package
        out = Path(f"{source.stem}{suffix}")
    else:
        out = source.with_suffix(suffix)
    check_output_file(out, (source,), overwrite)
    model = model_from_checkpoint(load_checkpoint(source))
    return export_onnx(model, out) if fmt == "onnx" else export_torchscript(model, out)
