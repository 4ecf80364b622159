"""Export a trained network for deployment: ONNX (onnxruntime, mobile) or TorchScript (C++/libtorch).

Both keep batch, height and width dynamic: the network pads any size to a multiple of 4 and
crops back, and that logic is exported with symbolic shapes rather than frozen at the example
size. The exported model maps RGB in [0, 1] (N, 3, H, W) to the stylized image, unclamped
(clamp to [0, 1] on display, as ``ImageTransformNet.stylize`` does).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.errors import ConfigError, FastStyleError
from fast_style.models import ImageTransformNet

FORMATS = ("onnx", "torchscript")


def export_onnx(model: ImageTransformNet, path: Path, opset: int = 18) -> Path:
    """torch.onnx's exporter (torch.export based) with dynamic batch/height/width."""
    try:
        import onnxscript  # noqa: F401  (the exporter needs it; say so clearly if missing)
    except ImportError:
        raise FastStyleError("format=onnx needs the onnx extras: pip install onnx onnxscript onnxruntime") from None
    example = torch.rand(1, 3, 37, 50)  # sides not multiples of 4: the padding path is traced
    dims = {
        0: torch.export.Dim("batch", min=1, max=1024),
        2: torch.export.Dim("height", min=8, max=16384),
        3: torch.export.Dim("width", min=8, max=16384),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model.eval(), (example,), str(path), dynamic_shapes={"x": dims},
        input_names=["image"], output_names=["stylized"], opset_version=opset, verbose=False,
    )
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
