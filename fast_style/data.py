"""Training data: every way training reads photos, from a folder or from preprocessed shards.

Sections, in order:

- **Folders and files**: where a photo folder is (``sample`` included), which files in it are
  images (:func:`list_images`, the one place every photo folder goes through).
- **Crops**: the training input, short side resized and a centre square (:func:`load_crop`).
- **Header scan**: which files are unreadable, found before training (:func:`scan_images`).
- **Datasets and sampler**: :class:`PhotoFolder` and the seeded endless :class:`InfiniteSampler`.
- **Shards, reading**: the index format and :class:`ShardDataset`, the uint8 shards that
  ``scripts/preprocess.py`` writes (the writer, :mod:`fast_style.shards`, builds on this module).
- **Loader**: :func:`build_loader`, the fixed validation batch and what a run trains on
  (:func:`resolve_training_data`: a shard folder is autodetected by its index).

``data.root=sample`` (and ``data.val_root=sample``, ``evaluate.py photos=sample``) names the
photos embedded in the package (``fast_style/sample/photos``, public domain/CC0, licences in
``fast_style/sample/README.md``), so a fresh clone trains without downloading COCO.

Data order is a pure function of (seed, position), so a resumed run reads exactly the batches
an uninterrupted run would have read.

Bad files (corrupt, truncated, zero bytes, not an image, decompression-bomb sized) are handled in
two layers. :func:`scan_images` reads only each file's header (PIL ``Image.open`` + ``verify``;
no pixel decoding, ~1 ms per file) before training, so a broken dataset fails in seconds, not
after hours on a GPU; :func:`check_bad_fraction` is the one threshold test. What the header scan
cannot see (a JPEG cut off halfway) is skipped lazily by :class:`PhotoFolder`, which marks it in
a shared-memory flag tensor: DataLoader workers are separate processes, so a per-process counter
would be lost; the flags are read by the training process at log intervals and at the end of
the run.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from fast_style.checks import check_batch_split
from fast_style.errors import ConfigError, ImageError, first_line
from fast_style.images import is_image_file, load_image, resize_short_side, to_tensor

log = logging.getLogger(__name__)


# --- folders and files -----------------------------------------------------------------------

COCO_HELP = (
    "training needs a folder of photos, e.g. COCO train2014 (83k images, 13 GB): "
    "download http://images.cocodataset.org/zips/train2014.zip, unzip it and pass "
    "data.root=/path/to/train2014 (see docs/FEATURES.md, 'Training data')"
)

SAMPLE_NAME = "sample"
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SAMPLE_PHOTOS = SAMPLE_DIR / "photos"


def resolve_photo_root(root: str | Path) -> Path:
    """``sample`` -> the embedded photos (installed with the package); any other value is a path.

    A folder that happens to be called ``sample`` in the working directory is still reachable
    as ``./sample``: only the bare name is special, so the quick start works from any directory.
    """
    if str(root) == SAMPLE_NAME:
        return SAMPLE_PHOTOS
    return Path(root).expanduser()


def list_images(root: str | Path, what: str = "data.root") -> list[Path]:
    """All images under ``root`` (recursive, sorted for reproducibility); ``sample`` is the
    embedded photo set (:func:`resolve_photo_root`)."""
    root = resolve_photo_root(root)
    if not root.exists():
        raise ConfigError(f"{what}={root}: no such folder; {COCO_HELP}")
    if not root.is_dir():
        raise ConfigError(f"{what}={root}: not a folder; {COCO_HELP}")
    files = sorted(p for p in walk_files(root) if is_image_file(p))
    if not files:
        raise ConfigError(f"{what}={root}: no .jpg/.jpeg/.png/.webp/.bmp images found; {COCO_HELP}")
    return files


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root``, following symlinked folders (a data.root assembled from links to
    other disks is common; Path.rglob skipped them silently), each real folder once (a link
    cycle cannot loop)."""
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in names:
            path = Path(folder) / name
            if path.is_file():
                yield path


# --- crops -----------------------------------------------------------------------------------

def crop_image(path: Path, size: int) -> Image.Image:
    """Resize the short side to ``size`` (bicubic) and centre-crop a square: the Johnson training input."""
    img = resize_short_side(load_image(path), size)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_crop(path: Path, size: int) -> torch.Tensor:
    """:func:`crop_image` as a (3, size, size) float tensor in [0, 1] (uint8 / 255)."""
    return to_tensor(crop_image(path, size))


# --- header scan -----------------------------------------------------------------------------

def check_image_header(path: Path, max_pixels: int | None = None) -> str | None:
    """Why ``path`` is not a usable image, from its header alone, or None if it looks fine.

    ``Image.open`` reads only the header and ``verify`` walks the file structure without decoding
    pixels, so this costs about a millisecond per photo. It catches zero-byte files, HTML or text
    saved as .jpg, unknown formats, most broken PNGs and images with more pixels than
    ``max_pixels`` (default: Pillow's decompression-bomb limit). A JPEG truncated in its pixel
    data passes and is caught lazily by :class:`PhotoFolder`.
    """
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if limit and w * h > limit:
                    return f"too many pixels ({w}x{h} > {limit}; decompression-bomb sized)"
                img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return f"too many pixels ({e})"
    except Exception as e:  # noqa: BLE001 - UnidentifiedImageError, OSError, SyntaxError, struct errors...
        return f"not a readable image ({first_line(e, 160)})"
    return None


@dataclass
class ScanReport:
    """Result of :func:`scan_images`: readable files in order and the rejected ones with reasons."""

    good: list[Path] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def bad_fraction(self) -> float:
        total = len(self.good) + len(self.bad)
        return len(self.bad) / total if total else 0.0


def scan_images(files: Iterable[Path], max_pixels: int | None = None) -> ScanReport:
    """Header-only check of every file (see :func:`check_image_header`)."""
    report = ScanReport()
    for path in files:
        reason = check_image_header(path, max_pixels)
        if reason is None:
            report.good.append(path)
        else:
            report.bad.append((path, reason))
    return report


def check_bad_fraction(n_bad: int, n_total: int, max_bad_fraction: float, what: str = "data.root") -> None:
    """Stop with one clear line when too many training files are bad (a wrong folder, a broken
    download): a few corrupt photos are normal in 80k, a tenth of them is not."""
    if n_total and n_bad / n_total > max_bad_fraction:
        raise ConfigError(
            f"{what}: {n_bad} of {n_total} images ({n_bad / n_total:.1%}) are unreadable, more than "
            f"data.max_bad_fraction={max_bad_fraction:g}; fix or remove them (they are listed in the "
            f"log), or raise data.max_bad_fraction"
        )


# --- datasets and sampler --------------------------------------------------------------------

class PhotoFolder(Dataset):
    """Square crops of every photo under ``root``; unreadable files are skipped, not fatal.

    ``scan=True`` drops files whose header is bad before training (:func:`scan_images`,
    ``self.scan_report``). Files that fail later, when their pixels are decoded, are flagged in
    ``self.bad_flags``, a tensor in shared memory that DataLoader worker processes write and the
    training process reads (:meth:`bad_files`).
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int = 256,
        what: str = "data.root",
        scan: bool = False,
        max_pixels: int | None = None,
        report: ScanReport | None = None,
    ):
        if report is None:  # ``report``: a listing (and scan) made elsewhere, e.g. by rank 0 of a DDP job
            files = list_images(root, what)
            report = scan_images(files, max_pixels) if scan else ScanReport(good=files)
        self.scan_report = report
        self.files = self.scan_report.good
        self.n_listed = len(report.good) + len(report.bad)
        self.image_size = image_size
        self.max_pixels = max_pixels
        self.bad_flags = torch.zeros(len(self.files), dtype=torch.bool).share_memory_()
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, path: Path) -> torch.Tensor:
        if self.max_pixels:
            with Image.open(path) as img:  # header only: refuse before decoding a huge image
                if img.size[0] * img.size[1] > self.max_pixels:
                    raise ImageError(f"{path}: too many pixels ({img.size[0]}x{img.size[1]})")
        return load_crop(path, self.image_size)

    def __getitem__(self, index: int) -> torch.Tensor:
        # A bad file is replaced by the next readable one, so a few corrupt photos in 80k do
        # not end a run. The replacement is deterministic, which keeps resume exact.
        for offset in range(len(self.files)):
            i = (index + offset) % len(self.files)
            path = self.files[i]
            try:
                return self._load(path)
            except (ImageError, OSError, ValueError) as e:
                self.bad_flags[i] = True
                if path not in self._warned:
                    self._warned.add(path)
                    log.debug("skipping unreadable training image: %s", e)
        raise ConfigError(f"no readable image in {len(self.files)} files")

    def bad_files(self) -> list[Path]:
        """Files that failed to decode so far, in any process (header-scan rejects not included)."""
        return [self.files[i] for i in torch.nonzero(self.bad_flags).flatten().tolist()]


class InfiniteSampler(Sampler[int]):
    """Endless stream of indices: epoch ``e`` is a permutation seeded by ``seed + e``.

    ``start`` is the position in that stream (``step * batch_size`` on resume, with the global
    batch size under DDP). ``rank``/``world_size``: this process reads the positions
    ``start + rank``, ``start + rank + world_size``, ... (DistributedSampler's strided split of
    each epoch's permutation, without its padding: the stream never ends). So the global batch of
    step ``s``, stream positions ``[s*B, (s+1)*B)``, is the same set of images for any number of
    processes; process ``r`` holds the positions ``≡ r (mod world_size)`` of it, and the
    processes' shards are disjoint.
    """

    def __init__(self, n: int, seed: int = 0, start: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if start % world_size:
            raise ValueError(f"start {start} is not a multiple of world size {world_size}")
        self.n, self.seed, self.start = n, seed, start
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        pos = self.start + self.rank
        while True:
            epoch, offset = divmod(pos, self.n)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))
            for i in perm[offset :: self.world_size].tolist():
                yield i
                pos += self.world_size



# --- shards, reading -------------------------------------------------------------------------
# The format, shared with the writer (fast_style.shards): one index.json (written last and
# atomically, so a folder without it is an interrupted run) and numbered .npy files of
# (count, 3, image_size, image_size) uint8 crops, each exactly what load_crop makes times 255.

FORMAT = "fast-style-shards"
VERSION = 1
INDEX = "index.json"
LAYOUT = "NCHW uint8"
CROP = "short side resized to image_size (PIL bicubic), centre square crop (as data.load_crop)"


def read_index(folder: str | Path, what: str = "data.shards") -> dict[str, Any]:
    """The checked index of a shard folder; every way it can be wrong is one ConfigError line."""
    folder = Path(folder).expanduser()
    path = folder / INDEX
    if not path.is_file():
        raise ConfigError(
            f"{what}={folder}: no {INDEX}; not a shard folder (make one with scripts/preprocess.py, "
            "or an earlier run was interrupted)"
        )
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable shard index ({e})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a fast-style shard index")
    if index.get("version") != VERSION or index.get("layout") != LAYOUT:
        raise ConfigError(f"{path}: shard format version {index.get('version')} is not supported ({VERSION})")
    counts = sum(int(s["count"]) for s in index["shards"])
    if counts != len(index["sources"]) or counts != index["count"]:
        raise ConfigError(f"{path}: inconsistent index ({counts} images in shards, {len(index['sources'])} sources)")
    return index


class ShardDataset(Dataset):
    """The images of a shard folder as (3, S, S) float tensors in [0, 1], like :class:`PhotoFolder`.

    Shards are memory-mapped lazily in each process (DataLoader workers included), so the dataset
    pickles small and reads only the pages it touches. ``files`` are the source paths (for
    reports); nothing here is decoded, so ``bad_files()`` is always empty: preprocessing skipped
    and listed the unreadable photos.
    """

    def __init__(self, folder: str | Path, image_size: int | None = None, what: str = "data.shards"):
        self.folder = Path(folder).expanduser()
        index = read_index(self.folder, what)
        self.image_size = int(index["image_size"])
        if image_size is not None and image_size != self.image_size:
            raise ConfigError(
                f"{what}={folder}: shards were made at {self.image_size} px but data.image_size={image_size}; "
                f"train with data.image_size={self.image_size} or preprocess again at {image_size}"
            )
        self.index = index
        self.files = [Path(p) for p in index["sources"]]
        self.n_listed = len(self.files)
        self.scan_report = ScanReport(good=list(self.files))
        self.bad_flags = torch.zeros(len(self.files), dtype=torch.bool)
        self._names = [s["file"] for s in index["shards"]]
        self._ends = np.cumsum([int(s["count"]) for s in index["shards"]]).tolist()
        self._arrays: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def _open(self) -> list[np.ndarray]:
        arrays = []
        shape = (3, self.image_size, self.image_size)
        for name, start, end in zip(self._names, [0, *self._ends[:-1]], self._ends):
            try:
                array = np.load(self.folder / name, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise ConfigError(f"{self.folder / name}: unreadable shard ({e})") from None
            if array.dtype != np.uint8 or array.shape != (end - start, *shape):
                raise ConfigError(
                    f"{self.folder / name}: holds {array.dtype} {array.shape}, the index says uint8 "
                    f"{(end - start, *shape)}; preprocess again"
                )
            arrays.append(array)
        return arrays

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._arrays is None:
            self._arrays = self._open()
        if not 0 <= index < len(self.files):
            raise IndexError(index)
        k = bisect.bisect_right(self._ends, index)
        local = index - (self._ends[k - 1] if k else 0)
        pixels = torch.from_numpy(np.array(self._arrays[k][local]))
        # exactly torchvision's to_tensor of the PIL crop: uint8 -> default float, / 255
        return pixels.to(dtype=torch.get_default_dtype()).div(255)

    def bad_files(self) -> list[Path]:
        return []

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None  # memory maps are reopened in the receiving process
        return state


def is_shard_dir(path: str | Path | None) -> bool:
    """A folder written by ``scripts/preprocess.py`` (it holds the shard index)."""
    return path is not None and (resolve_photo_root(path) / INDEX).is_file()


# --- loader ----------------------------------------------------------------------------------

def build_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    workers: int = 2,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """Batches of the endless seeded stream from step ``start_step``. ``batch_size`` is the GLOBAL
    batch: under DDP each of the ``world_size`` processes loads ``batch_size // world_size`` images
    of it (see :class:`InfiniteSampler`)."""
    check_batch_split(batch_size, world_size)
    sampler = InfiniteSampler(
        len(dataset), seed=seed, start=start_step * batch_size, rank=rank, world_size=world_size
    )
    return DataLoader(
        dataset,
        batch_size=batch_size // world_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def fixed_photos(root: str | Path, n: int, size: int, what: str = "data.val_root") -> torch.Tensor:
    """The first ``n`` readable photos of a folder (or of a shard folder) as one batch (for sample
    grids and validation)."""
    if is_shard_dir(root):
        shards = ShardDataset(root, size, what=what)
        return torch.stack([shards[i] for i in range(min(n, len(shards)))])
    out = []
    for path in list_images(root, what):
        try:
            out.append(load_crop(path, size))
        except ImageError as e:
            log.warning("skipping unreadable image: %s", e)
        if len(out) == n:
            break
    if not out:
        raise ConfigError(f"{what}={root}: no readable images")
    return torch.stack(out)


@dataclass
class DataSource:
    """What a run trains on, resolved once (by rank 0 under DDP) and shared with every process:
    a photo folder with its scan report, or a shard folder (``scripts/preprocess.py``)."""

    kind: str  # "photos" | "shards"
    root: str
    report: ScanReport

    @property
    def n_listed(self) -> int:
        return len(self.report.good) + len(self.report.bad)


def resolve_training_data(
    root: str | Path | None,
    image_size: int,
    scan: bool = True,
    shards: str | Path | None = None,
    max_pixels: int | None = None,
) -> DataSource:
    """``shards`` if given, else ``root``: a shard folder (autodetected by its index) or a photo
    folder, listed and (``scan``) header-checked."""
    if shards is not None or is_shard_dir(root):
        folder = shards if shards is not None else root
        dataset = ShardDataset(folder, image_size, what="data.shards" if shards is not None else "data.root")
        return DataSource("shards", str(folder), dataset.scan_report)
    files = list_images(root, "data.root")
    report = scan_images(files, max_pixels) if scan else ScanReport(good=files)
    return DataSource("photos", str(resolve_photo_root(root)), report)


def open_training_data(source: DataSource, image_size: int, max_pixels: int | None = None) -> Dataset:
    """The dataset of a :class:`DataSource`: :class:`PhotoFolder` or :class:`ShardDataset`."""
    if source.kind == "shards":
        return ShardDataset(source.root, image_size)
    return PhotoFolder(source.root, image_size, max_pixels=max_pixels, report=source.report)
