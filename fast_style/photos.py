"""Photo files: where a photo folder is, which files in it are images, how a training photo is
cropped, and which files are unreadable.

The lowest layer of the data path: :mod:`fast_style.data` (datasets and loaders) and
:mod:`fast_style.shards` (preprocessed shards) both build on it, so neither imports the other
for these helpers.

``data.root=sample`` (and ``data.val_root=sample``, ``evaluate.py photos=sample``) names the
photos embedded in the package (``fast_style/sample/photos``, public domain/CC0, licences in
``fast_style/sample/README.md``), so a fresh clone trains without downloading COCO. The name is
resolved in :func:`list_images`, the one place every photo folder goes through.

Bad files: :func:`scan_images` reads only each file's header (PIL ``Image.open`` + ``verify``;
no pixel decoding, ~1 ms per file) before training, so a broken dataset fails in seconds, not
after hours on a GPU; :func:`check_bad_fraction` is the one threshold test.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from fast_style.errors import ConfigError, first_line
from fast_style.images import is_image_file, load_image, resize_short_side, to_tensor

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
