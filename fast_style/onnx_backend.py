"""ONNX Runtime inference for :class:`~fast_style.stylize.Stylizer`: export once, cache, run.

Why: on a CPU, ONNX Runtime runs the Johnson network faster than eager PyTorch (numbers in
docs/PERFORMANCE.md), because its graph optimiser fuses each convolution with the following
instance norm / ReLU work and picks blocked-layout convolution kernels. So ``backend=auto`` uses
it on the CPU; on CUDA torch stays (the CPU onnxruntime wheel has no GPU provider).

The network is exported by :func:`export_fp32` (dynamic batch/height/width,
multi-style weights as a graph input, output clamped to [0, 1] in the graph) into
``$FAST_STYLE_ONNX_CACHE`` (default ``$FAST_STYLE_CACHE/onnx``, i.e. ``~/.cache/fast_style/onnx``),
once per network. The file name is a hash of the weights and configuration plus everything that
changes the exported graph (torch, onnx, onnxscript and fast-style versions, export options), so a
retrained checkpoint or an upgraded exporter gets a new file. Each ``<key>.onnx`` has a
``<key>.json`` holding the sha256 of the ``.onnx`` bytes; both are written atomically, and an entry
whose hash does not match or that onnxruntime refuses is rebuilt, never trusted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import torch

from fast_style import __version__
from fast_style.checks import check_precision
from fast_style.errors import first_line
from fast_style.fileio import atomic_write, cache_root, read_regular_file
from fast_style.models import ImageTransformNet
from fast_style.models.transformer import UpsampleConvNormReLU

log = logging.getLogger(__name__)

CALIBRATION_SIZE = 256  # long side of the embedded sample photos that calibrate int8 activation ranges
# bump when the exported graph changes for the same weights and versions (wrapper, clamp, names)
EXPORT_FORMAT = 3  # 2: polyphase output conv (fast_style.export); 3: TorchScript exporter first
# what the fresh graph is checked at: a batch of 2, and sides padded by 0 and 3 where the exporter's
# example (1, 3, 37, 50) is padded by 3 and 2, so a batch or padding frozen by a trace shows. One
# small shape: the check's cost is mostly torch's first call (0.2 s on 2 loaded cores)
CHECK_SHAPES = ((2, 3, 12, 13),)
CHECK_TOLERANCE = 1e-4
OPSET = 18


class BackendUnavailable(Exception):
    """onnxruntime cannot serve this network here; the message is the one-line reason."""


class NotCached(Exception):
    """``OnnxNet(..., export=False)``: this network has no verified cache entry (it would export)."""


def onnx_cache_dir() -> Path:
    """``$FAST_STYLE_ONNX_CACHE``, else ``onnx`` in :func:`fast_style.fileio.cache_root`
    (``$FAST_STYLE_CACHE``, ``$XDG_CACHE_HOME/fast_style``, ``~/.cache/fast_style``)."""
    explicit = os.environ.get("FAST_STYLE_ONNX_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return cache_root() / "onnx"


def _versions() -> dict[str, str]:
    """Versions of what produces the exported graph (onnxruntime only reads it: not part of the key).
    Read from the installed metadata: importing onnxscript costs a cached run a second."""
    from importlib.metadata import version

    return {"torch": torch.__version__, "onnx": version("onnx"), "onnxscript": version("onnxscript"),
            "fast_style": __version__, "format": str(EXPORT_FORMAT)}


def model_digest(model: ImageTransformNet) -> str:
    """sha256 of the network's content: configuration, every tensor's name, dtype, shape and bytes,
    and the decoder's computation flags (so a changed checkpoint always gets a new export)."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(repr([m.fast_upsample for m in model.modules() if isinstance(m, UpsampleConvNormReLU)]).encode())
    return h.hexdigest()


def cache_key(model: ImageTransformNet, precision: str = "fp32", digest: str | None = None) -> str:
    """File stem of the cached export: the model digest (``digest`` when the caller has it) plus the
    versions and export options (for int8 also onnxruntime's version: its quantiser writes that graph)."""
    parts = {"model": digest or model_digest(model), "versions": _versions(), "opset": OPSET, "clamp": True,
             "precision": precision}
    if precision != "fp32":
        from importlib.metadata import version

        parts["onnxruntime"] = version("onnxruntime")
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def session_options(threads: int | None = None):  # noqa: ANN201 - onnxruntime is imported lazily
    """Sessions tuned for one image at a time on a CPU (measured in docs/PERFORMANCE.md):
    every graph optimisation (conv + norm/ReLU fusion, blocked layouts), intra-op threads = torch's
    thread count (physical cores unless the user set it), no inter-op parallelism (the network is
    one chain of convolutions)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: its optimiser's notes are not the user's business
    return so


class OnnxNet:
    """A cached, verified onnxruntime session for one network: ``net(x, style_weights)`` takes a
    (B, 3, H, W) float tensor in [0, 1] and the Stylizer's (n_styles,) weights (multi-style only)
    and returns the clamped stylization as a CPU tensor, like ``ImageTransformNet.stylize``.

    Sides must be >= 8: the network's own padding switches from reflection to replication for
    smaller images, a Python branch the export fixes to reflection (:class:`OnnxRuntimeNet` sends those to torch)."""

    def __init__(self, model: ImageTransformNet, cache: Path | None = None, precision: str = "fp32",
                 export: bool = True):
        from importlib.util import find_spec

        self.precision = check_precision(precision)
        self.n_styles = model.config.n_styles
        self.cache = cache or onnx_cache_dir()
        self.digest = model_digest(model)  # what every cache entry of this network must record
        self.key = cache_key(model, self.precision, self.digest)
        self.path = self.cache / f"{self.key}.onnx"
        cached = None
        if not export:  # only a verified entry (checked before onnxruntime is imported: a cold start is torch's)
            cached, _ = read_verified(self.path, self.digest, self.precision)
            if cached is None:
                raise NotCached(str(self.path))
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed (pip install onnxruntime onnx onnxscript)") from None
        for name in ("onnx", "onnxscript"):  # the exporter's; found, not imported (start-up time)
            if find_spec(name) is None:
                raise BackendUnavailable(f"{name} is not installed (pip install onnxruntime onnx onnxscript)")
        self.exported = False  # True when this call had to (re)build the cache entry
        self.session = self._load(model, cached)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def _load(self, model: ImageTransformNet, cached: bytes | None = None):  # noqa: ANN202
        import onnxruntime as ort

        data, problem = (cached, None) if cached is not None else read_verified(self.path, self.digest, self.precision)
        if data is not None:
            touch(self.path)  # last use, for prune_cache's least-recently-used rule
            try:
                return ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - any load failure means: rebuild
                problem = f"onnxruntime cannot load it ({first_line(e, 120)})"
        if problem:
            log.warning("ONNX cache entry %s: %s; exporting it again", self.path, problem)
        data = self._export(model)
        try:
            return ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise BackendUnavailable(f"onnxruntime cannot load the fresh export ({first_line(e, 120)})") from None

    def _fp32_graph(self, model: ImageTransformNet) -> bytes:
        """The fp32 graph: for an int8 build, the verified fp32 cache entry of this network when
        there is one (the export is most of a cold start), else a fresh export."""
        if self.precision != "fp32":
            fp32_path = self.cache / f"{cache_key(model, 'fp32', self.digest)}.onnx"
            data, problem = read_verified(fp32_path, self.digest, "fp32")
            if problem:
                log.warning("ONNX cache entry %s: %s; not quantising it", fp32_path, problem)
            if data is not None:
                log.info("onnxruntime: quantising the cached fp32 export %s", fp32_path)
                return data
        return export_fp32(model)

    def _export(self, model: ImageTransformNet) -> bytes:
        t = time.perf_counter()
        log.info("onnxruntime: exporting this network once to %s (cached for the next runs)", self.path)
        try:
            data = self._fp32_graph(model)
        except Exception as e:  # noqa: BLE001 - an exporter failure falls back to torch with its reason
            raise BackendUnavailable(f"ONNX export failed ({first_line(e, 160)})") from None
        if self.precision == "int8":
            try:
                data = quantize_int8(data, self.n_styles)
            except Exception as e:  # noqa: BLE001 - same: one line, then fp32 torch
                raise BackendUnavailable(f"int8 quantisation failed ({first_line(e, 160)})") from None
        try:
            with atomic_write(self.path) as f:
                f.write(data)
            # the record goes second: a crash in between leaves a mismatch, which is rebuilt
            with atomic_write(self.path.with_suffix(".json")) as f:
                record = {"sha256": hashlib.sha256(data).hexdigest(), "versions": _versions(),
                          "model": self.digest, "config": model.config.to_dict(),
                          "precision": self.precision}
                f.write(json.dumps(record, indent=1).encode())
        except OSError as e:  # read-only or full cache: run from memory, export again next time
            log.warning("ONNX cache %s not writable (%s); the export is used for this run only", self.cache, e)
        self.exported = True
        prune_cache(self.cache, keep={self.path.name, self.path.with_suffix(".json").name})
        log.info("onnxruntime: export took %.1f s", time.perf_counter() - t)
        return data

    def __call__(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        feeds = {self.input_names[0]: x.detach().cpu().float().contiguous().numpy()}
        if self.n_styles > 1:
            if style_weights is None:
                raise ValueError("this is a multi-style network: pass style weights")
            w = style_weights.detach().cpu().float().reshape(-1, self.n_styles)
            feeds[self.input_names[1]] = np.ascontiguousarray(w.expand(x.shape[0], self.n_styles).numpy())
        return torch.from_numpy(self.session.run(None, feeds)[0])


def export_fp32(model: ImageTransformNet) -> bytes:
    """The clamped fp32 graph the cache holds: TorchScript exporter first, checked, else torch.export's.

    Why: the export is most of a cold start. The torch.export-based exporter took 12.6 s (plus 1.8 s
    to import onnxscript) for a shipped network on 2 loaded cores, the TorchScript one 1.3 s, with
    the same outputs to the bit and the same run time. A trace fixes the Python branches on sizes
    as the example took them, and that exporter is deprecated, so its graph must compute what the
    network does at :data:`CHECK_SHAPES` (:func:`graph_mismatch`); if it fails, is gone from a
    newer torch, or disagrees, the torch.export-based exporter builds the entry (one info line)."""
    from fast_style import export  # the module, not the function: tests stand in for onnx_bytes

    try:
        data = export.onnx_bytes(model, OPSET, clamp=True, exporter="torchscript")
        problem = graph_mismatch(data, model)
    except Exception as e:  # noqa: BLE001 - any failure of the fast path means: the slow one
        problem = f"failed ({first_line(e, 120)})"
    if problem is None:
        return data
    log.info("onnxruntime: the TorchScript exporter %s; using the torch.export-based one (slower)", problem)
    return export.onnx_bytes(model, OPSET, clamp=True, exporter="dynamo")


def graph_mismatch(data: bytes, model: ImageTransformNet) -> str | None:
    """None when the ONNX graph ``data`` gives the network's clamped output (random weights for a
    multi-style network) within :data:`CHECK_TOLERANCE` at every :data:`CHECK_SHAPES`; else why not.
    Costs about 0.3 s on 2 loaded cores (one session, a tiny batch, torch's first call)."""
    import onnxruntime as ort

    # the caller's network itself when it is already what runs here (a copy costs 0.1 s)
    as_is = not model.training and all(
        t.device.type == "cpu" and t.dtype == torch.float32 for t in model.state_dict().values())
    net = model if as_is else copy.deepcopy(model).float().cpu().eval()
    session = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    generator = torch.Generator().manual_seed(0)
    for shape in CHECK_SHAPES:
        x = torch.rand(shape, generator=generator)
        feeds = {names[0]: x.numpy()}
        weights = None
        if net.config.n_styles > 1:
            weights = torch.rand(shape[0], net.config.n_styles, generator=generator)
            weights = weights / weights.sum(dim=1, keepdim=True)
            feeds[names[1]] = weights.numpy()
        with torch.no_grad():
            expected = net.stylize(x, weights)
        got = torch.from_numpy(session.run(None, feeds)[0])
        if got.shape != expected.shape:
            return f"gives shape {tuple(got.shape)} for {tuple(expected.shape)} at {shape}"
        diff = (got - expected).abs().max().item()
        if not diff <= CHECK_TOLERANCE:
            return f"differs from the network by {diff:.2g} at {shape}"
    return None


# The cache keeps the most recently used entries up to this many bytes (an fp32 Johnson network is
# ~7 MB, its int8 build ~2 MB): entries of older versions, checkpoints or formats are never read
# again, so without a bound the folder would grow with every retrained network and upgrade.
CACHE_LIMIT_BYTES = 256 * 2**20


def touch(path: Path) -> None:
    """Mark a cache entry as just used (its mtime), ignoring a read-only cache."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune_cache(folder: Path, keep: set[str] = frozenset(), limit: int = CACHE_LIMIT_BYTES) -> list[Path]:
    """Delete the least recently used entries (``.onnx`` with its ``.json`` record; by mtime,
    which a served entry refreshes) until the folder's entries fit in ``limit`` bytes; ``keep``:
    file names never deleted (the entry just written). Only regular files directly in ``folder``
    are considered; symlinks and anything else are left alone. Returns what was removed."""
    try:
        entries = [p for p in folder.iterdir() if p.suffix == ".onnx" and p.is_file() and not p.is_symlink()]
    except OSError:
        return []
    sizes = {}
    for p in entries:
        try:
            sizes[p] = p.stat().st_size + (p.with_suffix(".json").stat().st_size
                                           if p.with_suffix(".json").is_file() else 0)
        except OSError:
            continue
    total, removed = sum(sizes.values()), []
    for p in sorted(sizes, key=lambda q: q.stat().st_mtime if q.exists() else 0):
        if total <= limit:
            break
        if p.name in keep:
            continue
        for f in (p, p.with_suffix(".json")):
            try:
                f.unlink()
            except OSError:
                pass
        total -= sizes[p]
        removed.append(p)
    if removed:
        log.info("ONNX cache %s: removed %d least recently used entr%s (limit %d MB)", folder, len(removed),
                 "y" if len(removed) == 1 else "ies", limit // 2**20)
    return removed


def read_verified(
    path: Path, digest: str | None = None, precision: str | None = None
) -> tuple[bytes | None, str | None]:
    """(bytes, None) for a cache entry whose hash matches its record and whose record names the
    network being served (``digest``: :func:`model_digest`) at ``precision``; (None, reason)
    otherwise (reason None when there is simply no entry yet).

    Why the digest too: the file name is only a hash of the network, so an entry copied (or
    planted) under another network's name passes the file-hash check and would be served as this
    network. Only regular files are read (:func:`fast_style.fileio.read_regular_file`): a FIFO at
    the key would block the reader forever."""
    meta_path = path.with_suffix(".json")
    if not os.path.lexists(path) and not os.path.lexists(meta_path):
        return None, None
    try:
        data = read_regular_file(path)
        meta = json.loads(read_regular_file(meta_path))
    except (OSError, ValueError) as e:
        why = "not a regular file" if "not a regular file" in str(e) else e.__class__.__name__
        return None, f"unreadable ({why})"
    if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        return None, "its hash does not match its record (corrupt or partly written)"
    if digest is not None and meta.get("model") != digest:
        return None, "its record names another network (copied or planted under this network's key)"
    if precision is not None and meta.get("precision", "fp32") != precision:
        return None, f"its record says precision {meta.get('precision')}, not {precision}"
    return data, None


def calibration_batches(n_styles: int) -> list[dict[str, np.ndarray]]:
    """What int8 activation ranges are calibrated on: the embedded sample photos (fast_style/sample,
    public domain) at 256 px and mirrored, each run with every style of a multi-style network.
    Real photos, not noise: the ranges must cover what users feed, and noise has none of their
    flat regions and edges."""
    from fast_style.data import SAMPLE_PHOTOS, list_images
    from fast_style.images import load_image, resize_long_side, to_tensor

    feeds = []
    for path in list_images(SAMPLE_PHOTOS):
        x = to_tensor(resize_long_side(load_image(path), CALIBRATION_SIZE)).unsqueeze(0)
        for image in (x, x.flip(-1)):
            for s in range(n_styles):
                feed = {"image": image.numpy()}
                if n_styles > 1:
                    feed["style_weights"] = np.eye(n_styles, dtype=np.float32)[s : s + 1]
                feeds.append(feed)
    return feeds


def quantize_int8(fp32: bytes, n_styles: int = 1) -> bytes:
    """Static int8 in QDQ form (onnxruntime.quantization): the convolutions only (weights per output
    channel, their inputs per tensor with min/max ranges from :func:`calibration_batches`); instance
    norm, ReLU and the residual adds stay fp32, which measured both faster and closer to fp32
    than quantising every op.

    Why static: dynamic quantisation re-measures activations on every call and ran slower than
    fp32; static QDQ runs faster, with a visible change in fine texture (both measured in
    docs/PERFORMANCE.md), so it is opt-in (``precision=int8``), never the default."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(calibration_batches(n_styles))

        def get_next(self):  # noqa: ANN202 - onnxruntime's interface
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        op_types_to_quantize=["Conv"])
        return out.read_bytes()


class Verdict(Enum):
    """Where the options put the network, before anything is exported (:func:`choose_runtime`)."""

    ONNXRUNTIME = "onnxruntime"  # onnxruntime may serve it (its start can still fail: BackendUnavailable)
    TORCH = "torch"  # torch because that is what was asked: backend=torch, or auto on CUDA (no line)
    FALLBACK = "fallback"  # onnxruntime was asked for or would be picked, but cannot serve: ``why``


@dataclass(frozen=True)
class BackendChoice:
    """:class:`Verdict` plus, for :attr:`Verdict.FALLBACK`, the one-line reason (logged once)."""

    verdict: Verdict
    why: str = ""

    def fallback(self, why: str) -> BackendChoice:
        """The same request, now a fallback to torch for ``why`` (e.g. a failed export)."""
        return BackendChoice(Verdict.FALLBACK, why)


def choose_runtime(backend: str, device: torch.device, compile: bool) -> BackendChoice:
    """Whether ``backend`` (checked by :func:`fast_style.checks.check_backend`) may run on
    onnxruntime for this device and ``compile`` option, and if not, whether that is by request or
    a fallback (and why)."""
    if backend == "torch":
        return BackendChoice(Verdict.TORCH)
    if device.type != "cpu":
        if backend == "auto":
            return BackendChoice(Verdict.TORCH)
        return BackendChoice(Verdict.FALLBACK, f"the onnxruntime backend runs on the CPU; device={device} uses torch")
    if compile:
        return BackendChoice(Verdict.FALLBACK, "compile=true is torch.compile, so the network runs on torch")
    return BackendChoice(Verdict.ONNXRUNTIME)


class OnnxRuntimeNet:
    """Backend (:class:`fast_style.backends.Backend`): an :class:`OnnxNet` with the Stylizer's style
    weights bound. Images with a side under 8 px go to ``small`` (eager torch), said once through
    ``note``: the exported graph pads by reflection, which needs a side of 8 (see OnnxNet)."""

    name = "onnxruntime"

    def __init__(self, session: OnnxNet, style_weights: torch.Tensor | None,
                 small: Callable[[torch.Tensor], torch.Tensor], note: Callable[[str], None]):
        self.session, self.style_weights, self.small, self.note = session, style_weights, small, note

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if min(batch.shape[-2:]) < 8:
            self.note("images with a side under 8 px run on torch (the exported graph pads to 8 by reflection)")
            return self.small(batch)
        return self.session(batch, self.style_weights)


__all__ = ["CACHE_LIMIT_BYTES", "BackendChoice", "BackendUnavailable", "NotCached", "OnnxNet", "OnnxRuntimeNet",
           "Verdict", "cache_key", "calibration_batches", "choose_runtime", "export_fp32", "graph_mismatch",
           "model_digest", "onnx_cache_dir", "prune_cache", "quantize_int8", "session_options"]
