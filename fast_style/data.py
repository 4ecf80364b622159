"""Training data: photo and shard datasets, the seeded endless sampler and the loader.

Data order is a pure function of (seed, position), so a resumed run reads exactly the batches
an uninterrupted run would have read.

Bad files (corrupt, truncated, zero bytes, not an image, decompression-bomb sized) are handled in
two layers. :func:`fast_style.photos.scan_images` reads only each file's header before training,
so a broken dataset fails in seconds, not after hours on a GPU. What the header scan cannot see
(a JPEG cut off halfway) is skipped lazily by :class:`PhotoFolder`, which marks it in a
shared-memory flag tensor: DataLoader workers are separate processes, so a per-process counter
would be lost; the flags are read by the training process at log intervals and at the end of
the run.

File-level helpers (``sample``, listing, cropping, the header scan) live in :mod:`fast_style.photos`,
below both this module and :mod:`fast_style.shards`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from fast_style.checks import check_batch_split
from fast_style.errors import ConfigError, ImageError
from fast_style.photos import ScanReport, list_images, load_crop, resolve_photo_root, scan_images
from fast_style.shards import INDEX, ShardDataset

log = logging.getLogger(__name__)

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


def is_shard_dir(path: str | Path | None) -> bool:
    """A folder written by ``scripts/preprocess.py`` (it holds the shard index)."""
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
        folder = shards if shards is not None else root
        dataset = ShardDataset(folder, image_size, what="data.shards" if shards is not None else "data.root")
        return DataSource("shards", str(folder), dataset.scan_report)
    files = list_images(root, "data.root")
    report = scan_images(files, max_pixels) if scan else ScanReport(good=files)
    return DataSource("photos", str(resolve_photo_root(root)), report)


def open_training_data(source: DataSource, image_size: int, max_pixels: int | None = None) -> Dataset:
    """The dataset of a :class:`DataSource`: :class:`PhotoFolder` or :class:`~fast_style.shards.ShardDataset`."""
    if source.kind == "shards":
        return ShardDataset(source.root, image_size)
    return PhotoFolder(source.root, image_size, max_pixels=max_pixels, report=source.report)
