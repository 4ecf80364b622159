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
:class:`Bf16Net` (here)                       torch bf16 autocast, channels_last (``auto``, where measured fastest)
:class:`~fast_style.onnx_backend.OnnxRuntimeNet`  the cached ONNX export (``backend=onnxruntime``, ``auto``)
:class:`AutoNet` (here)                       ``backend=auto`` on a CPU: one of the above by the machine's profile
:class:`~fast_style.tiling.TiledNet`          images over ``tile_size`` in tiles, the rest through another
:class:`~fast_style.video.SmoothedNet`        one video's temporally smoothed copy (``temporal_smoothing``)
============================================  ==========================================================
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from importlib.util import find_spec
from typing import Protocol, runtime_checkable

import torch

from fast_style import machine
from fast_style.models import ImageTransformNet
from fast_style.onnx_backend import BackendUnavailable, NotCached, OnnxNet, OnnxRuntimeNet, Verdict, choose_runtime
from fast_style.tiling import TiledNet

log = logging.getLogger("fast_style.onnx_backend.auto")  # INFO lines shown by scripts/stylize.py, like the export's
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


class Bf16Net:
    """The network in torch under bf16 autocast on a channels_last copy (convolutions in bf16,
    instance norm in fp32), output as float32. Chosen by :class:`AutoNet` only where the CPU has
    bf16 units and the machine's profile measured it fastest; its output is within the quality
    bar :data:`fast_style.machine.BF16_QUALITY` of fp32."""

    name = "torch"

    def __init__(self, model: ImageTransformNet, style_weights: torch.Tensor | None = None):
        self.model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.style_weights = style_weights

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = self.model.stylize(batch.contiguous(memory_format=torch.channels_last), self.style_weights)
        return y.float().contiguous()


class AutoNet:
    """``backend=auto`` on a CPU in fp32: the path this machine runs fastest, by the rule of
    :func:`fast_style.machine.fastest` on its measured :class:`~fast_style.machine.MachineProfile`.

    With the network's export cached (verified), the choice is made here: onnxruntime, unless the
    profile measured torch or bf16 faster (one line). With no export cached the images start on
    eager torch, and before each batch the rule is asked again for the pixels run so far plus
    that batch: once onnxruntime with the export costs less than torch for them, the network is
    exported (once, cached; one line) and every later batch runs on onnxruntime. So one small
    photo (0.15 MP) never pays for an export, one large image is exported for at once, and a
    folder of small photos switches after a few, at worst one export's time later than knowing
    the folder's size would have. An unmeasured machine is measured (once, cached) only when the
    pixels so far reach :data:`fast_style.machine.MEASURE_PIXELS`; below that, torch."""

    def __init__(self, model: ImageTransformNet, style_weights: torch.Tensor | None = None,
                 note: Note = lambda _: None):
        self.model, self.style_weights, self.note = model, style_weights, note
        self.torch = EagerNet(model, style_weights)
        self.current: Backend = self.torch
        self.pixels = 0  # pixels of the batches decided so far (the work a cold export must repay)
        self.settled = False  # True once nothing more can change (onnxruntime started, or never faster)
        missing = [name for name in ("onnxruntime", "onnx", "onnxscript") if find_spec(name) is None]
        if missing:  # nothing to measure or export: torch, said once (as backend=auto always did)
            self.note(f"backend=auto: {missing[0]} is not installed (pip install onnxruntime onnx onnxscript); "
                      "the network runs on torch")
            self.settled = True
            return
        self.profile = machine.machine_profile(measure=False)
        if self.profile is not None and machine.fastest(self.profile, 1e6, cached=True) != "onnxruntime":
            self._use(machine.fastest(self.profile, 1e6, cached=True))
            log.info("backend=auto: %s is faster than onnxruntime on this machine (%.2f vs %.2f s/MP, measured once)",
                     self.path, self.profile.seconds(self.path, 1e6), self.profile.onnxruntime_fp32)
            self.settled = True
            return
        try:
            self._start_onnx(export=False)
        except NotCached:
            pass  # cold: torch until the work seen repays an export

    @property
    def name(self) -> str:
        return self.current.name

    @property
    def path(self) -> str:
        """What runs now: ``torch``, ``bf16`` or ``onnxruntime``."""
        return "bf16" if isinstance(self.current, Bf16Net) else self.current.name

    def _use(self, path: str) -> None:
        if path != self.path:
            self.current = Bf16Net(self.model, self.style_weights) if path == "bf16" else self.torch

    def _start_onnx(self, export: bool) -> None:
        """onnxruntime from now on (or torch for good, said once, if it cannot start); with
        ``export=False`` only from a verified cache entry, else :class:`NotCached`."""
        try:
            session = OnnxNet(self.model, export=export)
        except BackendUnavailable as e:
            self.note(f"backend=auto: {e}; the network runs on torch")
            self.current = self.torch
        else:
            self.current = OnnxRuntimeNet(session, self.style_weights, small=self.torch, note=self.note)
        self.settled = True

    def _decide(self, pixels: int) -> None:
        self.pixels += pixels
        if self.profile is None:
            if self.pixels < machine.MEASURE_PIXELS:
                return
            self.profile = machine.machine_profile(measure=True)
            if self.profile is None:  # measuring failed (said): torch, as before it
                self.settled = True
                return
        best = machine.fastest(self.profile, self.pixels, cached=False)
        if best == "onnxruntime":
            log.info("backend=auto: exporting this network for onnxruntime (once, cached): for %.1f MP so far it "
                     "takes %.1f s with the %.1f s export, torch %.1f s on this machine",
                     self.pixels / 1e6, self.profile.seconds("onnxruntime", self.pixels, cached=False),
                     self.profile.export, self.profile.seconds("torch", self.pixels))
            self._start_onnx(export=True)
            return
        self._use(best)
        if machine.fastest(self.profile, 1e15, cached=False) != "onnxruntime":
            self.settled = True  # onnxruntime is not the faster per pixel here: no job repays its export

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if not self.settled:
            self._decide(int(batch.shape[0] * batch.shape[-2] * batch.shape[-1]))
        return self.current(batch)


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
    :func:`~fast_style.onnx_backend.choose_runtime`, a failed start (:class:`BackendUnavailable`),
    ``precision=int8`` on torch (which stays fp32); a ``tile_size`` wraps whichever runs in a
    :class:`~fast_style.tiling.TiledNet` (tiles always run on eager torch)."""
    whole = EagerNet(model, style_weights)
    choice = choose_runtime(backend, device, compile)
    net: Backend | None = None
    if choice.verdict is Verdict.ONNXRUNTIME and backend == "auto" and precision == "fp32":
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
    return TiledNet(net, model, tile_size, style_weights, note=note)


__all__ = ["AutoNet", "Backend", "Bf16Net", "CompiledNet", "EagerNet", "Note", "open_backend"]
