"""Training photos: a COCO-style folder (any folder of images, searched recursively).

Data order is a pure function of (seed, position), so a resumed run reads exactly the batches
an uninterrupted run would have read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fast_style.errors import ConfigError, ImageError
from fast_style.images import is_image_file, load_image, resize_short_side, to_tensor

log = logging.getLogger(__name__)

COCO_HELP = (
    "training needs a folder of photos, e.g. COCO train2014 (83k images, 13 GB): "
    "download http://images.cocodataset.org/zips/train2014.zip, unzip it and pass "
    "data.root=/path/to/train2014 (see README, 'Training data')"
)


def list_images(root: str | Path, what: str = "data.root") -> list[Path]:
    """All images under ``root`` (recursive, sorted for reproducibility)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise ConfigError(f"{what}={root}: no such folder; {COCO_HELP}")
    if not root.is_dir():
        raise ConfigError(f"{what}={root}: not a folder; {COCO_HELP}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise ConfigError(f"{what}={root}: no .jpg/.jpeg/.png/.webp/.bmp images found; {COCO_HELP}")
    return files


def load_crop(path: Path, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` and centre-crop a square: the Johnson training input."""
    img = resize_short_side(load_image(path), size)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return to_tensor(img.crop((left, top, left + size, top + size)))


class PhotoFolder(Dataset):
    """Square crops of every photo under ``root``; unreadable files are skipped, not fatal."""

    def __init__(self, root: str | Path, image_size: int = 256, what: str = "data.root"):
        self.files = list_images(root, what)
        self.image_size = image_size
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        # A bad file is replaced by the next readable one, so a few corrupt photos in 80k do
        # not end a run. The replacement is deterministic, which keeps resume exact.
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            try:
                return load_crop(path, self.image_size)
            except ImageError as e:
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("skipping unreadable training image: %s", e)
        raise ConfigError(f"no readable image in {len(self.files)} files")


class InfiniteSampler(Sampler[int]):
    """Endless stream of indices: epoch ``e`` is a permutation seeded by ``seed + e``.

    ``start`` is the position in that stream (``step * batch_size`` on resume).
    """

    def __init__(self, n: int, seed: int = 0, start: int = 0):
        self.n, self.seed, self.start = n, seed, start

    def __iter__(self) -> Iterator[int]:
        pos = self.start
        while True:
            epoch, offset = divmod(pos, self.n)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))
            for i in perm[offset:].tolist():
                yield i
                pos += 1


def build_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    workers: int = 2,
    pin_memory: bool = False,
) -> DataLoader:
    sampler = InfiniteSampler(len(dataset), seed=seed, start=start_step * batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def fixed_photos(root: str | Path, n: int, size: int, what: str = "data.val_root") -> torch.Tensor:
    """The first ``n`` readable photos of a folder as one batch (for sample grids and validation)."""
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
