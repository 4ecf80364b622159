"""What runs the network inside a :class:`~fast_style.stylize.Stylizer`, chosen once when it is built.

Why one interface: the Stylizer used to decide per batch between tiles, onnxruntime, a compiled
graph and eager torch, and a hidden argument swapped in the video's smoothed network. Now each of
those is a :class:`Backend`, a callable ``net(batch) -> batch``, picked by :func:`open_backend`
from the Stylizer's options (``backend``, ``compile``, ``tile_size``, ``precision``, the device);
the Stylizer applies the per-image options (pixel cap, strength, colour) around whichever runs.

The backends:

============================================  ==========================================================
:class:`EagerNet` (here)                      the network in PyTorch (``backend=torch``, CUDA, fallbacks)
:class:`CompiledNet` (here)                   the same through ``torch.compile`` (``compile=true``)
:class:`Bf16Net` (here)                       torch bf16, channels_last (``auto``, where measured fastest)
:class:`~fast_style.onnx_backend.OnnxRuntimeNet`  the cached ONNX export (``backend=onnxruntime``, ``auto``)
:class:`~fast_style.machine.AutoNet`          ``backend=auto`` on a CPU: one of the above by the machine's profile
:class:`~fast_style.tiling.TiledNet`          images over ``tile_size`` in tiles, the rest through another
:class:`~fast_style.video.SmoothedNet`        one video's temporally smoothed copy (``temporal_smoothing``)
============================================  ==========================================================
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.models import ImageTransformNet

Note = Callable[[str], None]  # one warning line (the Stylizer logs each distinct one once)


@runtime_checkable
class Backend(Protocol):
    """``net(batch) -> batch``: a (B, 3, H, W) float32 batch in [0, 1] on the Stylizer's device in,
    its clamped stylization out (the Stylizer moves it back to that device).

    The style (a multi-style network's mixing weights) is bound when the backend is built, so
    every call runs the same network. ``name`` is what runs it, ``torch`` or ``onnxruntime``
    (:attr:`Stylizer.backend <fast_style.stylize.Stylizer>`)."""

    name: str

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


class EagerNet:
    """The network in eager PyTorch, output clamped to [0, 1] (:meth:`ImageTransformNet.stylize`)."""

    name = "torch"

    def __init__(self, model: ImageTransformNet, style_weights: torch.Tensor | None = None):
        self.model, self.style_weights = model, style_weights

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.stylize(batch, self.style_weights)


class CompiledNet:
    """The network through ``torch.compile``: one static graph per image size (dynamic-shape
    kernels are slower; after 8 sizes torch falls back to eager with a warning)."""

    name = "torch"

    def __init__(self, model: ImageTransformNet, style_weights: torch.Tensor | None = None):
        self.compiled = torch.compile(model, dynamic=False)
        self.style_weights = style_weights

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        # outside inference_mode (the video path runs in one): its tensors cannot enter a compiled graph
        with torch.inference_mode(False), torch.no_grad():
            x = batch.clone() if batch.is_inference() else batch
            return self.compiled(x, self.style_weights).clamp_(0.0, 1.0)


class Bf16InstanceNorm(nn.Module):
    """Instance norm of a bf16 channels_last map, written as one image's batch norm in training mode
    (per-channel statistics over the pixels, accumulated in fp32, and the scale and shift in one
    pass over the map), image by image; the affine parameters stay fp32.

    Why: autocast runs instance norm in fp32, and the casts and layout copies around it cost more
    than the convolutions at 1024² (torch profiler: 2.0 s of copies against 2.9 s of convolution
    per image on one thread), and ``var_mean`` over a channels_last map is as slow (0.1 s per
    32-channel 1024² map, 3x this)."""

    def __init__(self, norm: nn.InstanceNorm2d):
        super().__init__()
        self.eps = norm.eps
        # plain tensors, not parameters: ``Bf16Net`` casts the network to bf16, these stay fp32
        self.weight = norm.weight.detach().float().clone() if norm.weight is not None else None
        self.bias = norm.bias.detach().float().clone() if norm.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [F.batch_norm(image, None, None, self.weight, self.bias, True, 0.0, self.eps) for image in x.split(1)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class Bf16Net:
    """The network in bf16 on a channels_last copy (weights and activations bf16, instance-norm
    statistics fp32: :class:`Bf16InstanceNorm`), output as float32. Chosen by
    :class:`~fast_style.machine.AutoNet` only where the CPU has bf16 units and the machine's profile
    measured it fastest; its output is within the quality bar :data:`fast_style.machine.BF16_QUALITY`
    of fp32."""

    name = "torch"

    def __init__(self, model: ImageTransformNet, style_weights: torch.Tensor | None = None):
        net = copy.deepcopy(model)
        for module in list(net.modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.InstanceNorm2d):
                    setattr(module, child_name, Bf16InstanceNorm(child))
        self.model = net.to(torch.bfloat16).to(memory_format=torch.channels_last)
        self.style_weights = style_weights

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        return self.model.stylize(x, self.style_weights).float().contiguous()


def open_backend(
    model: ImageTransformNet,
    device: torch.device,
    style_weights: torch.Tensor | None = None,
    backend: str = "auto",
    compile: bool = False,
    precision: str = "fp32",
    tile_size: int | None = None,
    note: Note = lambda _: None,
) -> Backend:
    """The backend a Stylizer with these (checked) options runs, started now: for onnxruntime the
    export (or cache read) happens here, once, not on the first image.

    What the exported graph cannot serve runs on torch, said once through ``note``: the reasons of
    :func:`~fast_style.onnx_backend.choose_runtime`, a failed start
    (:class:`~fast_style.onnx_backend.BackendUnavailable`), ``precision=int8`` on torch (which
    stays fp32); a ``tile_size`` wraps whichever runs in a :class:`~fast_style.tiling.TiledNet`
    (tiles always run on eager torch)."""
    # the extras this option needs are imported here, when it selects them (tests/test_layering.py)
    from fast_style.onnx_backend import BackendUnavailable, OnnxNet, OnnxRuntimeNet, Verdict, choose_runtime

    whole = EagerNet(model, style_weights)
    choice = choose_runtime(backend, device, compile)
    net: Backend | None = None
    if choice.verdict is Verdict.ONNXRUNTIME and backend == "auto" and precision == "fp32":
        from fast_style.machine import AutoNet

        net = AutoNet(model, style_weights, note=note)
    elif choice.verdict is Verdict.ONNXRUNTIME:
        try:
            net = OnnxRuntimeNet(OnnxNet(model, precision=precision), style_weights, small=whole, note=note)
        except BackendUnavailable as e:
            choice = choice.fallback(f"{e}; the network runs on torch")
    if net is None:
        why = choice.why
        if precision != "fp32":
            why = f"{why or f'torch on {device}'}, in fp32 (precision={precision} is onnxruntime's)"
        if why:
            note(f"backend={backend}: {why}")
        net = CompiledNet(model, style_weights) if compile else whole
    if tile_size is None:
        return net
    from fast_style.tiling import TiledNet

    return TiledNet(net, model, tile_size, style_weights, note=note)


__all__ = ["Backend", "Bf16Net", "CompiledNet", "EagerNet", "Note", "open_backend"]
