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
from torch import nn

from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.errors import ConfigError, FastStyleError
from fast_style.fileio import atomic_write
from fast_style.models import ImageTransformNet
from fast_style.models.transformer import ConditionalInstanceNorm2d

FORMATS = ("onnx", "torchscript")


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
        for m in self.net.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.style_weights = style_weights
        y = self.net.run_styled(image)
        return y.clamp(0.0, 1.0) if self.clamp else y


def onnx_bytes(model: ImageTransformNet, opset: int = 18, clamp: bool = False) -> bytes:
    """The network as one self-contained ONNX file (weights inside, no external-data sidecar).

    torch.onnx's exporter (torch.export based) with dynamic batch/height/width. Inputs:
    ``image`` (N, 3, H, W) and, for multi-style networks, ``style_weights`` (N, n_styles);
    output ``stylized``, clamped to [0, 1] when ``clamp``.
    """
    try:
        import onnxscript  # noqa: F401  (the exporter needs it; say so clearly if missing)
    except ImportError:
        raise FastStyleError("ONNX export needs onnx and onnxscript: pip install onnx onnxscript onnxruntime") from None
    net = copy.deepcopy(model).float().cpu().eval()  # the export sets attributes on the norms: not on the caller's net
    example = torch.rand(1, 3, 37, 50)  # sides not multiples of 4: the padding path is traced
    batch = torch.export.Dim("batch", min=1, max=1024)
    dims = {0: batch, 2: torch.export.Dim("height", min=8, max=16384), 3: torch.export.Dim("width", min=8, max=16384)}
    if net.config.n_styles > 1:
        wrapper: nn.Module = _ExportableMultiStyle(net, clamp)
        args: tuple[torch.Tensor, ...] = (example, torch.full((1, net.config.n_styles), 1.0 / net.config.n_styles))
        shapes: dict[str, object] = {"image": dims, "style_weights": {0: batch}}
        names = ["image", "style_weights"]
    else:
        wrapper, args, shapes, names = _Exportable(net, clamp), (example,), {"image": dims}, ["image"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation/advice warnings are not the user's business
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
    """Scripted (not traced), so the size-dependent padding stays dynamic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the libtorch route
        scripted = torch.jit.script(model.eval())
    scripted.save(str(path))
    return path


def export_checkpoint(ckpt: str | os.PathLike, fmt: str, output: str | os.PathLike | None = None) -> Path:
    """Export the network of a fast-style checkpoint; default output next to it (.onnx / .ts.pt)."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}: choose one of {', '.join(FORMATS)}")
    ckpt = Path(ckpt)
    model = model_from_checkpoint(load_checkpoint(ckpt))
    out = Path(output) if output else ckpt.with_suffix(".onnx" if fmt == "onnx" else ".ts.pt")
    if out.resolve() == ckpt.resolve():
        raise ConfigError(f"output={out} would overwrite the checkpoint")
    return export_onnx(model, out) if fmt == "onnx" else export_torchscript(model, out)
