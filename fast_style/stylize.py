"""Stylization: the :class:`Stylizer` API and the file/folder driver that scripts/stylize.py uses."""

from __future__ import annotations

import copy
import logging
import math
import os
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from fast_style.backends import Backend, open_backend
from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.checks import MIN_TILE, check_backend, check_precision, goes_tiled, integer_at_least
from fast_style.color import check_mode as check_color_mode
from fast_style.color import match_color, preserve_luminance
from fast_style.device import resolve_device
from fast_style.errors import ConfigError, FastStyleError, ImageError, Interrupted
from fast_style.fileio import ensure_writable_dir, safe_name
from fast_style.images import SAVE_FORMATS, is_image_file, load_image, save_image, scale_image, to_pil, to_tensor
from fast_style.models import ImageTransformNet

log = logging.getLogger(__name__)

# The one cap on output pixels per image (``max_pixels=auto``), from peak memory measured on the
# CPU with the default network (width 32): a whole-image pass takes ~670 bytes per output pixel
# (16 MP ~ 11 GB), a tiled one ~100 (its 1/4-resolution cache, input and output: 180 MP ~ 18 GB,
# about Pillow's own 179 MP limit for a file). An integer max_pixels applies to both.
WHOLE_IMAGE_MAX_PIXELS = 16_000_000
TILED_MAX_PIXELS = 180_000_000
MIN_OUTPUT_SIDE = 16  # a scale that leaves fewer pixels on a side is a typo, not a picture


class Stylizer:
    """A trained network ready for inference: ``Stylizer.from_checkpoint(path)(image)``.

    Accepts a PIL image (returns PIL RGB) or a float tensor in [0, 1] of shape (3, H, W) or
    (B, 3, H, W) (returns the same shape, on the input's device).

    Options applied after the network, so one checkpoint serves them all:
    ``strength`` in [0, 1] blends the stylization with the photo (1 = full style);
    ``preserve_color`` = ``luminance`` keeps the photo's chroma, ``histogram`` pulls the output's
    colour distribution back to the photo's (see :mod:`fast_style.color`). For multi-style
    checkpoints, ``style_weights`` selects or mixes the styles (see :meth:`from_checkpoint`).

    ``tile_size`` (pixels, >= 64) runs images with a side longer than that in tiles of about that
    size, with whole-image instance-norm statistics (:mod:`fast_style.tiling`): the same output
    as one pass, with activation memory set by the tile instead of the image.

    ``backend``: ``onnxruntime`` runs the network through ONNX Runtime (faster than eager torch
    on a CPU, see docs/PERFORMANCE.md), exported once per network into a cache
    (:mod:`fast_style.onnx_backend`); ``torch`` runs it in PyTorch; ``auto`` (default) is torch on
    CUDA and, on a CPU, the path the machine's one-time profile measured fastest: onnxruntime, or
    torch in bf16 where the CPU has bf16 units (:class:`fast_style.machine.AutoNet`). Every option
    applies either way (strength and colour run after the network; style weights are an input of
    the exported graph). What the exported graph cannot serve runs on torch with one log line
    saying why: tiled images (the per-layer whole-image statistics of :mod:`fast_style.tiling`),
    the temporally smoothed video network, ``compile=True``, a CUDA device, a missing onnxruntime
    or a failed export.

    ``precision="int8"`` (onnxruntime only, opt-in): the exported graph quantised to int8, with
    activation ranges calibrated on the embedded sample photos; faster than fp32 onnxruntime on a
    CPU once warm, at a visible cost in fine texture (both measured in docs/PERFORMANCE.md).
    Whatever runs on torch (tiles, smoothed video, fallbacks) stays fp32.

    ``compile=True`` runs the network through ``torch.compile`` (fused elementwise work around
    the convolutions; speed in docs/PERFORMANCE.md). The first image of each new size pays the
    compile (about a minute on CPU), so it is for folders and video, not for one photo. Tiles and
    the temporally smoothed video network stay eager.

    What runs the network is chosen once, here (:func:`fast_style.backends.open_backend`): the
    :attr:`net` backend, ``torch`` or ``onnxruntime`` in :attr:`backend`. Every batch then goes
    through :meth:`stylize_batch`: the pixel cap, ``net``, then strength and colour.
    """

    def __init__(
        self,
        model: ImageTransformNet,
        style: str = "style",
        device: str | torch.device = "auto",
        strength: float = 1.0,
        preserve_color: str | None = None,
        style_weights: torch.Tensor | None = None,
        tile_size: int | None = None,
        compile: bool = False,
        backend: str = "auto",
        max_pixels: int | str = "auto",
        precision: str = "fp32",
    ):
        if not isinstance(compile, bool):
            raise ConfigError(f"compile must be true or false, got {compile!r}")
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must be in [0, 1], got {strength!r}")
        check_color_mode(preserve_color)
        self.tile_size = check_tile_size(tile_size)
        self.max_pixels = check_max_pixels(max_pixels)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model = model.to(self.device).eval()
        self.style = style
        self.strength = strength
        self.preserve_color = preserve_color
        self.style_weights = None if style_weights is None else normalized_weights(style_weights)
        self._notes: set[str] = set()
        self.precision = check_precision(precision)
        if self.precision != "fp32" and backend == "torch":
            raise ConfigError(
                f"precision={precision} is an onnxruntime option: use backend=auto or backend=onnxruntime"
            )
        self.net: Backend = open_backend(
            self.model, self.device, self.style_weights, check_backend(backend), compile, self.precision,
            self.tile_size, note=self.note,
        )

    @property
    def backend(self) -> str:
        """What runs the network now, ``torch`` (also its bf16 path) or ``onnxruntime`` (``backend=auto``
        on a CPU may move to the faster path once the work seen is large enough:
        :class:`fast_style.machine.AutoNet`)."""
        return self.net.name

    def note(self, message: str) -> None:
        """One warning line per reason and Stylizer (not one per image); shared with the copies
        :meth:`with_network` makes."""
        if message not in self._notes:
            self._notes.add(message)
            log.warning(message)

    def with_network(self, net: Backend) -> Stylizer:
        """This Stylizer's options (style, strength, colour, pixel cap, device) around another
        backend: how the video path runs its temporally smoothed network
        (:class:`fast_style.video.SmoothedNet`). A shallow copy: the model and warning lines are shared."""
        other = copy.copy(self)
        other.net = net
        return other

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "auto",
        style: str | None = None,
        style_mix: dict[str, float] | None = None,
        **options: object,
    ) -> Stylizer:
        """Load a checkpoint. Multi-style ones need ``style=<name>`` or ``style_mix={name: weight}``
        (weights are relative: they are divided by their sum, so 70/30 is 0.7/0.3)."""
        model, label, weights = load_network(path, style, style_mix)
        return cls(model, style=label, device=device, style_weights=weights, **options)  # type: ignore[arg-type]

    def __call__(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        if isinstance(image, Image.Image):
            return to_pil(self.stylize_batch(to_tensor(image).unsqueeze(0))[0])
        if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise TypeError("Stylizer takes a PIL image or a float tensor of shape (3, H, W) or (B, 3, H, W)")
        batch = image.unsqueeze(0) if image.dim() == 3 else image
        out = self.stylize_batch(batch).to(image.device)
        return out[0] if image.dim() == 3 else out

    def tiles(self, width: int, height: int) -> bool:
        """Whether an image of this size goes through tiles (:func:`goes_tiled`)."""
        return goes_tiled(self.tile_size, width, height)

    def check_size(self, width: int, height: int, what: str = "image", scale: float = 1.0) -> None:
        """The one cap on output pixels (:func:`check_output_size`), for every path that stylizes."""
        check_output_size(width, height, self.tile_size, self.max_pixels, what, scale)

    def stylize_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """The network (:attr:`net`) and every option on a (B, 3, H, W) batch in [0, 1]; the result
        is on the Stylizer's device."""
        h, w = batch.shape[-2:]
        self.check_size(int(w), int(h))
        x = batch.to(self.device, dtype=torch.float32)
        return self.apply_options(x, self.net(x).to(x.device))

    def apply_options(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The options that run after the network, whichever backend it was: ``strength`` blends
        the photo ``x`` back in, ``preserve_color`` takes its colour (:mod:`fast_style.color`)."""
        if self.strength < 1.0:
            y = torch.lerp(x, y, self.strength)
        if self.preserve_color == "luminance":
            y = preserve_luminance(y, x)
        elif self.preserve_color == "histogram":
            y = match_color(y, x)
        return y


def load_network(
    path: str | os.PathLike, style: str | None = None, style_mix: object = None
) -> tuple[ImageTransformNet, str, torch.Tensor | None]:
    """(network, label, style weights) of a checkpoint for the style or mix asked: everything
    :meth:`Stylizer.from_checkpoint` reads from files and arguments, without starting a backend,
    so scripts can check their outputs before the (possibly long) ONNX export starts."""
    state = load_checkpoint(path)
    model = model_from_checkpoint(state)
    names = [str(n) for n in state.get("styles", [state.get("style", "style")])]
    weights = None
    label = names[0]
    if len(names) > 1 or style or style_mix:
        mix = check_style_mix(style_mix) if style_mix else ({str(style): 1.0} if style else None)
        if not mix:
            raise ConfigError(
                f"{path} holds {len(names)} styles ({', '.join(names)}): pass style=<name> or style_mix"
            )
        unknown = [n for n in mix if n not in names]
        if unknown:
            raise ConfigError(f"style(s) {unknown} not in {path}; it holds: {', '.join(names)}")
        if len(names) > 1:
            weights = normalized_weights(torch.tensor([mix.get(n, 0.0) for n in names], dtype=torch.float64))
        label = "+".join(n for n in names if mix.get(n, 0.0) > 0)
    return model, label, weights


def check_style_mix(style_mix: object) -> dict[str, float]:
    """``{name: weight}`` with finite weights >= 0, not all 0; else one ConfigError line
    (``style_mix=abc``, ``{a: abc}``, ``{a: inf}``, ``{a: -1}``)."""
    example = "style_mix={starry_night: 0.7, the_scream: 0.3}"
    if not isinstance(style_mix, dict) or not style_mix:
        raise ConfigError(f"style_mix must map style names to weights, e.g. {example}; got {style_mix!r:.80}")
    mix = {}
    for name, weight in style_mix.items():
        try:
            value = float(weight) if not isinstance(weight, bool) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"style_mix weight of {name} must be a finite number >= 0, got {weight!r:.40}")
        mix[str(name)] = value
    if not any(mix.values()):
        raise ConfigError("style_mix weights must be >= 0 and not all 0")
    return mix


def normalized_weights(weights: torch.Tensor) -> torch.Tensor:
    """Style weights divided by their sum (per row), as float32: mixing weights are relative, so
    ``{a: 70, b: 30}`` and ``{a: 0.7, b: 0.3}`` give one image, and a one-hot row is unchanged.
    Scaled by the largest weight first, so weights near the float limit (1e308) do not overflow."""
    w = weights.detach().to(torch.float64)
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ConfigError(f"style weights must be finite and >= 0, got {w.tolist()}")
    top = w.amax(dim=-1, keepdim=True)
    if (top <= 0).any():
        raise ConfigError("style weights must not be all 0")
    w = w / top
    return (w / w.sum(dim=-1, keepdim=True)).to(torch.float32)


def check_scale(scale: object) -> float:
    """``scale`` as a finite number > 0; else one ConfigError line (``scale=inf`` used to be an
    OverflowError deep in the size arithmetic)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or not scale > 0:
        raise ConfigError(f"scale must be a finite number > 0, got {scale!r}")
    return float(scale)


def check_tile_size(tile_size: object) -> int | None:
    """``None`` (whole images) or an integer >= :data:`~fast_style.checks.MIN_TILE`; else one ConfigError line."""
    if tile_size is None:
        return None
    return integer_at_least("tile_size", tile_size, MIN_TILE, " (pixels per tile side) or null for whole images")


def check_max_pixels(max_pixels: object) -> int | str:
    """``auto`` or a positive integer; else one ConfigError line."""
    if max_pixels == "auto":
        return "auto"
    return integer_at_least("max_pixels", max_pixels, 1, " (output pixels per image) or auto")


def check_output_size(width: int, height: int, tile_size: int | None = None, max_pixels: int | str = "auto",
                      what: str = "image", scale: float = 1.0) -> None:
    """The one cap on output pixels (:func:`output_pixel_limit`): one ConfigError line naming the
    way out. A plain function of the options, so a script can check a photo before its Stylizer
    (and the ONNX export) starts."""
    tiled = goes_tiled(tile_size, width, height)
    limit = output_pixel_limit(max_pixels, tiled)
    if width * height <= limit:
        return
    how = f" after scale={scale:g}" if scale != 1.0 else ""
    ways = [f"lower scale= (now {scale:g})"]
    if not tiled and width * height <= output_pixel_limit(max_pixels, True):
        ways.insert(0, "use tile_size=1024 (same output, memory set by the tile)")
    ways.append("raise max_pixels= if this machine has the memory")
    raise ConfigError(
        f"{what}: output would be {width}x{height} px ({width * height / 1e6:.1f} MP){how}, over the "
        f"{limit / 1e6:g} MP cap for {'tiled' if tiled else 'whole-image'} passes (max_pixels={max_pixels}); "
        + ", or ".join(ways)
    )


def check_photo(path: str | os.PathLike, scale: float = 1.0, tile_size: object = None,
                max_pixels: object = "auto") -> None:
    """What :func:`stylize_paths` refuses for one photo, from its header, before any network
    exists: a scale that leaves under :data:`MIN_OUTPUT_SIDE` px a side, or the pixel cap."""
    size = _planned_size(Path(path), check_scale(scale))
    if size is None:
        return  # unreadable header: loading it reports the real error
    _check_min_side(path, size, scale)
    check_output_size(*size, check_tile_size(tile_size), check_max_pixels(max_pixels), str(path), scale)


def _check_min_side(path: str | os.PathLike, size: tuple[int, int], scale: float) -> None:
    if scale < 1.0 and min(size) < MIN_OUTPUT_SIDE:
        raise ConfigError(
            f"scale={scale:g} makes {path} {size[0]}x{size[1]} px; use a scale that keeps at least "
            f"{MIN_OUTPUT_SIDE} px per side"
        )


def output_pixel_limit(max_pixels: int | str, tiled: bool) -> int:
    """Most output pixels one image may have: ``max_pixels``, or for ``auto`` what a pass of that
    kind fits in about 11-18 GB (:data:`WHOLE_IMAGE_MAX_PIXELS`, :data:`TILED_MAX_PIXELS`)."""
    if max_pixels == "auto":
        return TILED_MAX_PIXELS if tiled else WHOLE_IMAGE_MAX_PIXELS
    return int(max_pixels)


def plan_outputs(inputs: Path, output: Path | None, style: str) -> list[tuple[Path, Path]]:
    """Pair every input image with its output path; refuse anything that would overwrite an input.

    When the outputs go into the input folder (or a folder inside it), files named like this
    stylize's outputs (``*_<style>.png``) are not inputs: they are an earlier run's results, and
    reading them back would stylize them again (``a_candy_candy.png``) on every rerun.

    ``style`` comes from a checkpoint (any file from anywhere), so it goes through
    :func:`fast_style.fileio.safe_name` before it becomes part of a name: a style called
    ``/../../../victim`` cannot steer an output outside the output folder. An explicit output
    file must have a format images are written in (checked here, before any work).
    """
    style = safe_name(style)
    inputs = inputs.expanduser()
    if not inputs.exists():
        raise ConfigError(f"input={inputs}: no such file or folder")
    if inputs.is_dir():
        out_dir = output or Path("stylized")
        if is_image_file(out_dir) and not out_dir.is_dir():
            raise ConfigError(f"output={out_dir}: input is a folder, so output must be a folder too")
        files = sorted(p for p in inputs.rglob("*") if p.is_file() and is_image_file(p))
        root, target = inputs.resolve(), out_dir.expanduser().resolve()
        if target == root or root in target.parents:
            ours = [f for f in files if f.name.endswith(f"_{style}.png")]
            if ours:
                log.info("not reading %d file(s) named *_%s.png in %s: outputs of this style", len(ours), style, inputs)
            files = [f for f in files if not f.name.endswith(f"_{style}.png")]
        if not files:
            raise ConfigError(f"input={inputs}: no images (.jpg .jpeg .png .webp .bmp) in this folder")
        # a.jpg and a.png in one folder keep their extension in the name, so neither is lost
        stems = Counter((f.parent, f.stem) for f in files)

        def name(f: Path) -> str:
            stem = f.stem if stems[(f.parent, f.stem)] == 1 else f"{f.stem}_{f.suffix.lstrip('.')}"
            return f"{stem}_{style}.png"

        pairs = [(f, out_dir / f.relative_to(inputs).parent / name(f)) for f in files]
    else:
        if output is None:
            out = Path("stylized") / f"{inputs.stem}_{style}.png"
        elif output.is_dir() or not output.suffix:
            out = output / f"{inputs.stem}_{style}.png"
        elif output.suffix.lower() not in SAVE_FORMATS:
            raise ConfigError(f"output={output}: images are written as {' '.join(SAVE_FORMATS)}; "
                              "choose one of those extensions (or a folder)")
        else:
            out = output
        pairs = [(inputs, out)]
    sources = {p.resolve(): p for p, _ in pairs}
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst.resolve() in sources:
            victim = sources[dst.resolve()]
            raise ConfigError(
                f"{src} would be written to {dst}, overwriting the input image {victim}; choose another output"
            )
        if dst.resolve() in seen:
            first = seen[dst.resolve()]
            raise ConfigError(f"{first} and {src} would both be written to {dst}; rename one of them")
        seen[dst.resolve()] = src
    return pairs


def _planned_size(path: Path, scale: float) -> tuple[int, int] | None:
    """(width, height) after EXIF rotation and ``scale``, from the header only (no decode);
    None if the header cannot be read (the file is then loaded alone and reports its error)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            if img.getexif().get(0x0112) in (5, 6, 7, 8):  # orientations that swap the sides
                w, h = h, w
    except Exception:  # noqa: BLE001 - only a batching hint; load_image gives the real one-line error
        return None
    if scale != 1.0:  # huge scales stay finite: the pixel cap then refuses them in one line
        w, h = (max(1, round(min(side * scale, 1e12))) for side in (w, h))
    return w, h


def plan_batches(files: list[Path], scale: float, batch_size: int, tile_size: int | None = None) -> list[list[int]]:
    """Indices of ``files`` grouped by size after ``scale`` into batches of at most
    ``batch_size``, in order of each batch's first file. Unreadable headers, and images that will
    be tiled (a side over ``tile_size``: big enough to need all the memory), get a batch alone."""
    groups: dict[object, list[int]] = {}
    for i, f in enumerate(files):
        size = _planned_size(f, scale)
        alone = size is None or (tile_size is not None and max(size) > tile_size)
        groups.setdefault(("alone", i) if alone else size, []).append(i)
    batches = [g[k : k + batch_size] for g in groups.values() for k in range(0, len(g), batch_size)]
    return sorted(batches, key=lambda b: b[0])


class _ImageFiles(Dataset):
    """Decoded, scaled images as (index, (3, H, W) tensor or None, error line or None)."""

    def __init__(self, files: list[Path], scale: float, allow_huge: bool = False):
        self.files, self.scale, self.allow_huge = files, scale, allow_huge
        self.hint = "" if allow_huge else "to stylize it, use tile_size=1024"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = load_image(self.files[i], self.allow_huge, too_big_hint=self.hint, warn_alpha=True)
            return i, to_tensor(scale_image(image, self.scale)), None
        except ImageError as e:
            return i, None, str(e)


def _collate(items: list[tuple[int, torch.Tensor | None, str | None]]) -> tuple[list, list]:
    """Stack a planned batch; a file that fails to decode (or decodes to another size than its
    header said) does not take the others down: ([(indices, batch)], [(index, error)])."""
    groups: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
    errors = []
    for i, t, err in items:
        if t is None:
            errors.append((i, err))
        else:
            groups.setdefault(tuple(t.shape), []).append((i, t))
    return [([i for i, _ in g], torch.stack([t for _, t in g])) for g in groups.values()], errors


def resolve_batching(
    device: torch.device, batch_size: int | str = "auto", workers: int | str = "auto"
) -> tuple[int, int]:
    """Validate ``batch_size``/``workers`` and fill in ``"auto"``.

    On CPU, auto is batch 1 and no loader processes: measured on 2 cores (docs/PERFORMANCE.md),
    batches of 8 photos ran at half the images/s of single images (the activations of a batch
    overflow the caches) and decode workers slowed the network's threads down, since decoding
    is ~2 % of the time. On CUDA, batch 8 and up to 4 workers keep the GPU fed (not measured here).
    """
    cuda = device.type == "cuda"
    if batch_size == "auto":
        batch_size = 8 if cuda else 1
    if workers == "auto":
        workers = min(4, os.cpu_count() or 1) if cuda else 0
    batch_size = integer_at_least("batch_size", batch_size, 1, " or auto")
    return batch_size, integer_at_least("workers", workers, 0, " (0 = decode in this process) or auto")


def stylize_paths(
    stylizer: Stylizer,
    inputs: str | os.PathLike,
    output: str | os.PathLike | None = None,
    scale: float = 1.0,
    batch_size: int | str = "auto",
    progress: bool = True,
    workers: int | str = "auto",
) -> tuple[list[Path], list[str]]:
    """Stylize a file or every image of a folder. Returns (written files in input order, one-line errors).

    Images of equal size after ``scale`` are batched (sizes come from the file headers, so a
    folder of mixed sizes still fills its batches; odd sizes go alone). ``workers`` processes
    decode and resize ahead of the network (a torch DataLoader, pinned memory on CUDA), and a
    small thread pool encodes and writes the outputs, so decoding, the network and PNG
    compression overlap. A bad file is one warning line and is skipped while the rest go on.
    Ctrl-C stops after the images already stylized are written (they are kept) and raises
    :class:`~fast_style.errors.Interrupted` (one line: how many were written).
    """
    scale = check_scale(scale)
    batch_size, workers = resolve_batching(stylizer.device, batch_size, workers)
    pairs = plan_outputs(Path(inputs), Path(output) if output else None, stylizer.style)
    # Every size is known from the file headers: the pixel cap and a too small scale are found
    # before anything is decoded, and an unwritable output folder before anything is stylized.
    keep, errors = _sizes_within_limits(stylizer, pairs, scale)
    _check_output_folders(pairs)
    pairs = [pairs[i] for i in keep]
    if not pairs:
        return [], errors
    loader = _image_loader(stylizer, [src for src, _ in pairs], scale, batch_size, workers)
    bar = tqdm(total=len(pairs), desc=f"stylize ({stylizer.style})", unit="img", disable=not progress)
    # warnings go through tqdm.write while the bar is shown, so they do not break its line
    with bar, logging_redirect_tqdm() if progress else nullcontext(), ThreadPoolExecutor(max_workers=2) as pool:
        writes = _Writes(pool, errors)
        try:
            _stylize_batches(stylizer, loader, pairs, writes, bar)
        except KeyboardInterrupt:
            writes.wait(0)  # what is stylized is written (each write is atomic): kept, not lost
            raise Interrupted(
                f"interrupted: {len(writes.written)} of {len(pairs)} image(s) written (kept), the rest not stylized"
            ) from None
        writes.wait(0)
    return [writes.written[i] for i in sorted(writes.written)], errors


def _sizes_within_limits(
    stylizer: Stylizer, pairs: list[tuple[Path, Path]], scale: float
) -> tuple[list[int], list[str]]:
    """Indices of the ``pairs`` whose output size (from the file header) is within the pixel cap,
    and a warning line for each of the others; a lone file over the cap, or any scaled below the
    minimum side, is refused outright."""
    errors: list[str] = []
    keep = []
    for i, (src, _) in enumerate(pairs):
        size = _planned_size(src, scale)
        if size is None:
            keep.append(i)  # unreadable header: loading it reports the real error
            continue
        _check_min_side(src, size, scale)
        try:
            stylizer.check_size(*size, what=str(src), scale=scale)
            keep.append(i)
        except ConfigError as e:
            if len(pairs) == 1:
                raise
            errors.append(str(e))
            log.warning("%s", e)
    return keep, errors


def _check_output_folders(pairs: list[tuple[Path, Path]]) -> None:
    """Every output folder exists (made if needed) and can be written to: refused in one line if not."""
    for folder in dict.fromkeys(dst.parent for _, dst in pairs):
        try:
            ensure_writable_dir(folder)
        except OSError as e:
            raise ConfigError(f"cannot write to output folder {folder} ({e.strerror or e})") from None


def _image_loader(stylizer: Stylizer, files: list[Path], scale: float, batch_size: int, workers: int) -> DataLoader:
    """Planned batches of decoded, scaled ``files``, decoded ahead by up to ``workers`` processes."""
    batches = plan_batches(files, scale, batch_size, stylizer.tile_size) if len(files) > 1 else [[0]]
    n_workers = min(workers, len(batches)) if len(batches) > 1 else 0
    return DataLoader(
        _ImageFiles(files, scale, allow_huge=stylizer.tile_size is not None),  # tiles: big is the point
        batch_sampler=batches,
        num_workers=n_workers,
        collate_fn=_collate,
        pin_memory=stylizer.device.type == "cuda",
        prefetch_factor=1 if n_workers else None,  # one batch ahead per worker: bounded memory
    )


class _Writes:
    """Outputs encoded and written on ``pool`` while the network goes on; a failed read or write
    is one warning line in ``errors``."""

    def __init__(self, pool: ThreadPoolExecutor, errors: list[str]):
        self.pool, self.errors = pool, errors
        self.written: dict[int, Path] = {}
        self.pending: deque[tuple[int, Path, Future]] = deque()

    def fail(self, message: str) -> None:
        self.errors.append(message)
        log.warning(message)

    def submit(self, i: int, image: torch.Tensor, dst: Path) -> None:
        self.pending.append((i, dst, self.pool.submit(save_image, image, dst)))

    def wait(self, block_over: int) -> None:
        """Wait for writes until at most ``block_over`` are pending."""
        while len(self.pending) > block_over:
            i, dst, future = self.pending.popleft()
            try:
                self.written[i] = future.result()
            except (ImageError, OSError) as e:
                self.fail(f"{dst}: cannot write ({e})")


def _stylize_batches(
    stylizer: Stylizer, loader: DataLoader, pairs: list[tuple[Path, Path]], writes: _Writes, bar: tqdm
) -> None:
    """Every batch through the network, its images handed to ``writes``."""
    for groups, failed in loader:
        for _, message in failed:
            writes.fail(message)
        bar.update(len(failed))
        for indices, batch in groups:
            out = stylizer.stylize_batch(batch.to(stylizer.device, non_blocking=True)).cpu()
            for i, image in zip(indices, out):
                writes.submit(i, image, pairs[i][1])
            bar.update(len(indices))
            writes.wait(len(indices))  # the previous batch is written while the next one runs


__all__ = [
    "FastStyleError", "Stylizer", "check_max_pixels", "check_output_size", "check_photo", "check_scale",
    "check_style_mix", "check_tile_size", "goes_tiled", "load_network", "normalized_weights", "output_pixel_limit",
    "plan_batches", "plan_outputs", "resolve_batching", "stylize_paths",
]
