"""Training photos: a COCO-style folder (any folder of images, searched recursively).

Data order is a pure function of (seed, position), so a resumed run reads exactly the batches
an uninterrupted run would have read.

Bad files (corrupt, truncated, zero bytes, not an image, decompression-bomb sized) are handled in
two layers. :func:`scan_images` reads only each file's header (PIL ``Image.open`` + ``verify``;
no pixel decoding, ~1 ms per file) before training, so a broken dataset fails in seconds, not
after hours on a GPU. What the header scan cannot see (a JPEG cut off halfway) is skipped lazily
by :class:`PhotoFolder`, which marks it in a shared-memory flag tensor: DataLoader workers are
separate processes, so a per-process counter would be lost; the flags are read by the training
process at log intervals and at the end of the run.

``data.root=sample`` (and ``data.val_root=sample``, ``evaluate.py photos=sample``) names the
photos embedded in the package (``fast_style/sample/photos``, public domain/CC0, licences in
``fast_style/sample/README.md``), so a fresh clone trains without downloading COCO. The name is
resolved in :func:`list_images`, the one place every photo folder goes through.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from fast_style.errors import ConfigError, ImageError
from fast_style.images import is_image_file, load_image, resize_short_side, to_tensor

log = logging.getLogger(__name__)

COCO_HELP = (
    "training needs a folder of photos, e.g. COCO train2014 (83k images, 13 GB): "
    "download http://images.cocodataset.org/zips/train2014.zip, unzip it and pass "
    "data.root=/path/to/train2014 (see README, 'Training data')"
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
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise ConfigError(f"{what}={root}: no .jpg/.jpeg/.png/.webp/.bmp images found; {COCO_HELP}")
    return files


def crop_image(path: Path, size: int) -> Image.Image:
    """Resize the short side to ``size`` (bicubic) and centre-crop a square: the Johnson training input."""
    img = resize_short_side(load_image(path), size)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_crop(path: Path, size: int) -> torch.Tensor:
    """:func:`crop_image` as a (3, size, size) float tensor in [0, 1] (uint8 / 255)."""
    return to_tensor(crop_image(path, size))


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
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"not a readable image ({text[:160]})"
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
    if batch_size % world_size:
        raise ConfigError(
            f"data.batch_size={batch_size} is the global batch and must be divisible by the number of "
            f"processes ({world_size})"
        )
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
        from fast_style.shards import ShardDataset

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


def is_shard_dir(path: str | Path | None) -> bool:
    """A folder written by ``scripts/preprocess.py`` (it holds the shard index)."""
    from fast_style.shards import INDEX

    return path is not None and (resolve_photo_root(path) / INDEX).is_file()


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
        from fast_style.shards import ShardDataset

        folder = shards if shards is not None else root
        dataset = ShardDataset(folder, image_size, what="data.shards" if shards is not None else "data.root")
        return DataSource("shards", str(folder), dataset.scan_report)
    files = list_images(root, "data.root")
    report = scan_images(files, max_pixels) if scan else ScanReport(good=files)
    return DataSource("photos", str(resolve_photo_root(root)), report)


def open_training_data(source: DataSource, image_size: int, max_pixels: int | None = None) -> Dataset:
    """The dataset of a :class:`DataSource`: :class:`PhotoFolder` or :class:`~fast_style.shards.ShardDataset`."""
    if source.kind == "shards":
        from fast_style.shards import ShardDataset

        return ShardDataset(source.root, image_size)
    return PhotoFolder(source.root, image_size, max_pixels=max_pixels, report=source.report)
