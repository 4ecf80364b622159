"""How fast this machine runs the network each way, measured once and cached, and the rule
``backend=auto`` picks a CPU path by, and :class:`AutoNet`, the backend that applies it.

Why measure: the onnxruntime gain depends on the CPU (3.6x eager torch at 1024² on a 2-core AMD
EPYC, 2.0x on a 2-core Intel Xeon with AMX; docs/PERFORMANCE.md), and on a cold cache its
export (1-2 s) costs more than it saves on one small photo. So the choice is a sum of measured
numbers, not a guess: :func:`measure_machine` times a deterministic Johnson network (weights do
not matter for speed) on a fixed :data:`MEASURE_SIDE`² input in eager fp32 torch, in onnxruntime
fp32, and, where the CPU has bf16 units, in torch bf16 (:class:`~fast_style.backends.Bf16Net`),
plus the export itself. The :class:`MachineProfile` is kept as ``machine-<key>.json`` beside the
ONNX exports (:func:`fast_style.onnx_backend.onnx_cache_dir`); the key (:func:`machine_key`)
hashes the CPU model and flags, torch's thread count, the versions, the timed size and the timed
paths' revision, so another machine, thread count, upgrade or faster path measures again. A
file that is unreadable, corrupt or of another key is measured again (one line); an unwritable
one is used for this run only (one line).

The rule (:func:`fastest`): for a job of ``pixels``, the path with the smallest
``pixels x seconds-per-pixel``, plus the export for onnxruntime when the network is not cached.
bf16 is a candidate only where the CPU has bf16 units, because it passes the quality bar
:data:`BF16_QUALITY` on the shipped networks; int8 is never automatic (it fails that bar on two of
the four shipped networks: ``precision=int8`` stays opt-in).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path

import torch

from fast_style import __version__, onnx_backend  # the module: tests stand in for its OnnxNet
from fast_style.backends import Backend, Bf16Net, EagerNet, Note
from fast_style.device import BF16_FLAGS, cpu_description
from fast_style.errors import first_line
from fast_style.fileio import atomic_write, read_regular_file
from fast_style.models import ImageTransformNet

# children of the onnx_backend logger, whose INFO lines scripts/stylize.py shows (why a run is slower)
log = logging.getLogger("fast_style.onnx_backend.machine")
auto_log = logging.getLogger("fast_style.onnx_backend.auto")

# The timed input: 1 x 3 x 768 x 768. A path's cost per pixel can depend on the size (an earlier bf16
# path slowed from 1.3 to 2.3 s/MP between 512² and 1024²; docs/PERFORMANCE.md), so the profile times
# a size among the photos that reach the rule (MEASURE_PIXELS and up); measuring costs ~10 s once per
# machine on 2 cores, export included.
MEASURE_SIDE = 768
# A cold job is measured for only once it reaches this many pixels (counting the images it already
# ran): under it, the whole job on eager torch takes about what the measurement would (2-core
# machines: 3-5 s per MP on torch, 2-4 s to measure), so it runs on torch unmeasured.
MEASURE_PIXELS = 500_000
# bf16 may be chosen automatically because it meets this bar against fp32 torch on the shipped
# networks (benchmarks/bench_int8.py, 8 photos_val photos at 384 px: PSNR and style score in
# docs/PERFORMANCE.md); int8 does not (25-49 dB).
BF16_QUALITY = {"min_psnr_db": 40.0, "max_style_score_change": 0.01}
PATHS = ("torch", "onnxruntime", "bf16")  # what the rule picks among (bf16: backends.Bf16Net)
# Part of the key: raised when a timed path changes, so profiles timed with the old one are measured
# again (2: Bf16Net without autocast, ~1.4x faster at 1024²).
PATHS_REVISION = 2


@dataclass(frozen=True)
class MachineProfile:
    """Seconds per megapixel of each path on this machine (``torch_bf16`` None where the CPU has
    no bf16 units), seconds for one export (:func:`fast_style.onnx_backend.export_fp32`, its check
    included), and the key it was measured under."""

    key: str
    torch_fp32: float
    onnxruntime_fp32: float
    export: float
    torch_bf16: float | None = None
    cpu: str = ""

    def seconds(self, path: str, pixels: float, cached: bool = True) -> float:
        """What ``pixels`` cost on ``path`` (inf where not measured), the export included for an
        onnxruntime network that is not ``cached``."""
        rate = {"torch": self.torch_fp32, "onnxruntime": self.onnxruntime_fp32, "bf16": self.torch_bf16}[path]
        if rate is None:
            return math.inf
        return pixels / 1e6 * rate + (0.0 if cached or path != "onnxruntime" else self.export)


def fastest(profile: MachineProfile, pixels: float, cached: bool) -> str:
    """The rule: the path of :data:`PATHS` with the least :meth:`MachineProfile.seconds` for a job
    of ``pixels`` (torch on a tie: nothing to start)."""
    return min(PATHS, key=lambda p: (profile.seconds(p, pixels, cached), PATHS.index(p)))


def has_bf16_units(flags: list[str] | None = None) -> bool:
    return any(f in (flags if flags is not None else cpu_description()[1]) for f in BF16_FLAGS)


def machine_key() -> str:
    """Hash of what the measured speeds depend on: CPU model and flags, architecture, torch's
    thread count, torch, onnxruntime and fast-style versions, the timed size (a profile timed at
    another :data:`MEASURE_SIDE` is measured again) and :data:`PATHS_REVISION`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ort = version("onnxruntime")
    except PackageNotFoundError:
        ort = "none"
    model, flags = cpu_description()
    parts = {"cpu": model, "flags": flags, "arch": platform.machine(), "threads": torch.get_num_threads(),
             "torch": torch.__version__, "onnxruntime": ort, "fast_style": __version__, "side": MEASURE_SIDE,
             "paths": PATHS_REVISION}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def profile_path(cache: Path | None = None) -> Path:
    from fast_style.onnx_backend import onnx_cache_dir

    return (cache or onnx_cache_dir()) / f"machine-{machine_key()}.json"


def read_profile(path: Path) -> tuple[MachineProfile | None, str | None]:
    """(profile, None) for a valid file of this machine's key; (None, why) for a bad one;
    (None, None) when there is none yet."""
    if not os.path.lexists(path):
        return None, None
    try:
        data = json.loads(read_regular_file(path))
        profile = MachineProfile(**data)
    except (OSError, ValueError, TypeError) as e:
        return None, f"unreadable ({first_line(e, 80)})"
    if profile.key != path.stem.removeprefix("machine-"):
        return None, "it belongs to another machine or version"
    rates = [profile.torch_fp32, profile.onnxruntime_fp32, profile.export]
    if profile.torch_bf16 is not None:
        rates.append(profile.torch_bf16)
    if not all(isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) and r > 0
               for r in rates):
        return None, "its numbers are not positive seconds"
    return profile, None


def _best_of(fn: Callable[[], object], repeats: int = 1) -> float:
    """Seconds of the fastest of ``repeats`` calls after one warm-up (the least disturbed by load)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure_machine(key: str | None = None) -> MachineProfile:
    """Time the paths of :data:`PATHS` on a seeded Johnson network and a 1 x 3 x
    :data:`MEASURE_SIDE`² input, and one export (the caller's random state is left as it was)."""
    import onnxruntime as ort

    from fast_style.models import ImageTransformNet, TransformerConfig
    from fast_style.onnx_backend import export_fp32, session_options

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ImageTransformNet(TransformerConfig()).eval()
        x = torch.rand(1, 3, MEASURE_SIDE, MEASURE_SIDE)
    mp = MEASURE_SIDE * MEASURE_SIDE / 1e6
    with torch.no_grad():
        torch_s = _best_of(lambda: net.stylize(x))
    t = time.perf_counter()
    data = export_fp32(net)
    export_s = time.perf_counter() - t
    session = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: x.numpy()}
    ort_s = _best_of(lambda: session.run(None, feeds))
    model, flags = cpu_description()
    bf16 = None
    if has_bf16_units(flags):
        bf16_net = Bf16Net(net)  # the path AutoNet would run
        with torch.no_grad():
            bf16 = _best_of(lambda: bf16_net(x)) / mp
    return MachineProfile(key or machine_key(), torch_s / mp, ort_s / mp, export_s, bf16, model)


def machine_profile(measure: bool, cache: Path | None = None) -> MachineProfile | None:
    """This machine's cached profile; if there is none (or it is bad: one line) and ``measure``,
    measured now and cached (one line; an unwritable cache: used for this run only, one line)."""
    path = profile_path(cache)
    profile, problem = read_profile(path)
    if profile is not None:
        return profile
    if problem:
        log.warning("machine profile %s: %s; %s", path, problem, "measuring again" if measure else "ignored")
    if not measure:
        return None
    t = time.perf_counter()
    try:
        profile = measure_machine(path.stem.removeprefix("machine-"))
    except Exception as e:  # noqa: BLE001 - a failed measurement leaves the choice to the caller's default
        log.warning("machine profile: measuring failed (%s); not measured", first_line(e, 160))
        return None
    try:
        with atomic_write(path) as f:
            f.write(json.dumps(asdict(profile), indent=1).encode())
        where = f"cached in {path}"
    except OSError as e:
        where = f"not cached: cannot write {path} ({e.strerror or e}), so measured again next time"
    log.info("measured this machine once (%.1f s, %s): torch %.2f s/MP, onnxruntime %.2f s/MP, export %.1f s%s",
             time.perf_counter() - t, where, profile.torch_fp32, profile.onnxruntime_fp32, profile.export,
             f", bf16 {profile.torch_bf16:.2f} s/MP" if profile.torch_bf16 else "")
    return profile


class AutoNet:
    """``backend=auto`` on a CPU in fp32: the path this machine runs fastest, by the rule of
    :func:`fastest` on its measured :class:`MachineProfile`.

    A job runs on eager torch until its pixels reach :data:`MEASURE_PIXELS`: for one ordinary
    photo, starting onnxruntime (its import, reading and verifying the cached export, the session)
    costs more than it saves (warm first image of chelsea.jpg, 451x300: 2.66 s on torch against 2.92
    s on onnxruntime; docs/PERFORMANCE.md, "The rule"). From there, with the network's export cached
    (verified): onnxruntime, unless the profile measured torch or bf16 faster (one line). With no
    export cached, before each batch the rule is asked for the pixels run so far plus that batch:
    once onnxruntime with the export costs less than torch for them, the network is exported
    (once, cached; one line) and every later batch runs on onnxruntime. An unmeasured machine is
    measured (once, cached) at that point too. So one small photo never starts onnxruntime, one
    large image starts it at once, and a folder of small photos switches after a few."""

    def __init__(self, model: ImageTransformNet, style_weights: torch.Tensor | None = None,
                 note: Note = lambda _: None):
        self.model, self.style_weights, self.note = model, style_weights, note
        self.torch = EagerNet(model, style_weights)
        self.current: Backend = self.torch
        self.pixels = 0  # pixels of the batches decided so far (the work a cold export must repay)
        self.settled = False  # True once nothing more can change (onnxruntime started, or never faster)
        self.cold = False  # True once the cache is known to hold no export of this network
        missing = [name for name in ("onnxruntime", "onnx", "onnxscript") if find_spec(name) is None]
        if missing:  # nothing to measure or export: torch, said once (as backend=auto always did)
            self.note(f"backend=auto: {missing[0]} is not installed (pip install onnxruntime onnx onnxscript); "
                      "the network runs on torch")
            self.settled = True
            return
        self.profile = machine_profile(measure=False)
        self.preferred: str | None = None  # a path the profile measured faster than onnxruntime
        if self.profile is not None and fastest(self.profile, 1e6, cached=True) != "onnxruntime":
            self.preferred = fastest(self.profile, 1e6, cached=True)

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
        ``export=False`` only from a verified cache entry, else :class:`~fast_style.onnx_backend.NotCached`."""
        try:
            session = onnx_backend.OnnxNet(self.model, export=export)
        except onnx_backend.BackendUnavailable as e:
            self.note(f"backend=auto: {e}; the network runs on torch")
            self.current = self.torch
        else:
            self.current = onnx_backend.OnnxRuntimeNet(session, self.style_weights, small=self.torch, note=self.note)
        self.settled = True

    def _decide(self, pixels: int) -> None:
        self.pixels += pixels
        if self.pixels < MEASURE_PIXELS:
            return  # a small job: eager torch, nothing to start or convert
        if self.preferred:  # said when it is used, not for a small job that never reaches it
            self._use(self.preferred)
            auto_log.info("backend=auto: %s is faster than onnxruntime on this machine (%.2f vs %.2f s/MP, "
                          "measured once)", self.preferred, self.profile.seconds(self.preferred, 1e6),
                          self.profile.onnxruntime_fp32)
            self.settled = True
            return
        if not self.cold:
            try:
                self._start_onnx(export=False)  # warm: onnxruntime from now on
                return
            except onnx_backend.NotCached:
                self.cold = True  # torch until the work seen repays an export
        if self.profile is None:
            self.profile = machine_profile(measure=True)
            if self.profile is None:  # measuring failed (said): torch, as before it
                self.settled = True
                return
        best = fastest(self.profile, self.pixels, cached=False)
        if best == "onnxruntime":
            auto_log.info("backend=auto: exporting this network for onnxruntime (once, cached): for %.1f MP so far "
                          "it takes %.1f s with the %.1f s export, torch %.1f s on this machine",
                          self.pixels / 1e6, self.profile.seconds("onnxruntime", self.pixels, cached=False),
                          self.profile.export, self.profile.seconds("torch", self.pixels))
            self._start_onnx(export=True)
            return
        self._use(best)
        if fastest(self.profile, 1e15, cached=False) != "onnxruntime":
            self.settled = True  # onnxruntime is not the faster per pixel here: no job repays its export

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if not self.settled:
            self._decide(int(batch.shape[0] * batch.shape[-2] * batch.shape[-1]))
        return self.current(batch)


__all__ = ["AutoNet", "BF16_QUALITY", "MEASURE_PIXELS", "MEASURE_SIDE", "PATHS", "MachineProfile",
           "fastest", "has_bf16_units", "machine_key", "machine_profile", "measure_machine", "profile_path",
           "read_profile"]
