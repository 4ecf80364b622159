"""Writing pre-resized uint8 shards: decode and resize every training photo once, so training reads no JPEGs.

    python scripts/preprocess.py data.root=/data/coco/train2014 out=/data/coco/shards256 data.image_size=256
    python scripts/train.py data.root=/data/coco/shards256 ...      # autodetected (or data.shards=...)

Each image is stored exactly as the JPEG path hands it to the network: short side resized to
``image_size`` (PIL bicubic) and a centre square crop (:func:`fast_style.data.crop_image`), as
uint8 in NCHW order. The training crop is deterministic (no random crop or flip), so nothing is
lost by storing the crop itself: a shard image divided by 255 is bit-identical to
:func:`fast_style.data.load_crop` of its source. A different ``data.image_size`` needs its own
shards (training refuses a mismatch).

Layout of the output folder::

    index.json          format/version, image_size, layout, source root, the source path of every
                        stored image (in order), the files skipped as unreadable (with reasons),
                        and the shard files with their image counts
    images-00000.npy    (count, 3, image_size, image_size) uint8, read with np.load(mmap_mode="r")
    images-00001.npy    ...

``index.json`` is written last and atomically: a folder without it is an interrupted run.

Only ``scripts/preprocess.py`` needs this module. Training reads shards with
:class:`fast_style.data.ShardDataset`, and the format constants and the crop live in
:mod:`fast_style.data`, so writer and reader cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from fast_style.checks import integer_at_least
from fast_style.data import CROP, FORMAT, INDEX, LAYOUT, VERSION, check_bad_fraction, crop_image, list_images
from fast_style.errors import ConfigError, ImageError, first_line
from fast_style.fileio import atomic_write

log = logging.getLogger(__name__)


@dataclass
class PreprocessReport:
    out: Path
    image_size: int
    n_images: int
    n_listed: int
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    shards: int = 0
    bytes: int = 0
    seconds: float = 0.0


def _crop_uint8(job: tuple[str, int]) -> tuple[np.ndarray | None, str | None]:
    """One photo as a (3, size, size) uint8 array, or the reason it cannot be read (runs in a pool)."""
    path, size = job
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = crop_image(Path(path), size)
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)), None
    except (ImageError, OSError, ValueError, SyntaxError) as e:
        return None, first_line(e, 200)


def shard_name(i: int) -> str:
    return f"images-{i:05d}.npy"


def preprocess(
    root: str | Path,
    out: str | Path,
    image_size: int = 256,
    shard_size: int = 1024,
    workers: int | None = None,
    max_bad_fraction: float = 0.01,
    overwrite: bool = False,
    progress: bool = True,
) -> PreprocessReport:
    """Turn a photo folder (searched recursively, like training) into shards; see the module docstring.

    Unreadable files (corrupt, truncated, not images) are skipped, counted and listed in the
    index; more than ``max_bad_fraction`` of them is an error (a wrong folder, a broken download).
    ``workers``: decoding processes (default: all cores; 0 = in this process).
    """
    if not isinstance(image_size, int) or image_size <= 0 or image_size % 4:
        raise ConfigError(f"data.image_size must be a positive multiple of 4, got {image_size!r}")
    integer_at_least("shard_size", shard_size, 1)
    t0 = time.perf_counter()
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():  # before the listing: a typo is found at once
        raise ConfigError(f"out={out} is a file, not a folder; name a folder for the shards")
    files = list_images(root, "data.root")
    _clear_output(root, out, overwrite)
    workers = (os.cpu_count() or 1) if workers is None else workers
    writer = _ShardWriter(out, min(shard_size, len(files)), image_size)
    sources, skipped = _crop_all(files, image_size, workers, writer, progress)
    check_bad_fraction(len(skipped), len(files), max_bad_fraction)
    if not sources:
        raise ConfigError(f"data.root={root}: no readable images")
    _write_index(out, root, image_size, len(files), writer.shards, sources, skipped)
    return PreprocessReport(
        out=out, image_size=image_size, n_images=len(sources), n_listed=len(files), skipped=skipped,
        shards=len(writer.shards), bytes=writer.bytes, seconds=time.perf_counter() - t0,
    )


def _clear_output(root: str | Path, out: Path, overwrite: bool) -> None:
    """Make ``out`` ready for new shards: refused where it holds shards (without ``overwrite``) or
    is the photo folder; the old index and shards are removed."""
    if (out / INDEX).exists() and not overwrite:
        raise ConfigError(f"out={out}: already holds shards ({INDEX}); pass overwrite=true to replace them")
    if out.resolve() == Path(root).expanduser().resolve():
        raise ConfigError("out= must not be the photo folder itself")
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX).unlink(missing_ok=True)  # from here on the folder is "interrupted" until the end
    for old in out.glob("images-*.npy"):
        old.unlink()


class _ShardWriter:
    """Cropped images gathered in a buffer of ``capacity`` and saved as numbered shard files."""

    def __init__(self, out: Path, capacity: int, image_size: int):
        self.out = out
        self.buffer = np.empty((capacity, 3, image_size, image_size), dtype=np.uint8)
        self.filled = 0
        self.shards: list[dict[str, Any]] = []  # {"file", "count"} per shard written, as in the index
        self.bytes = 0

    def add(self, array: np.ndarray) -> None:
        self.buffer[self.filled] = array
        self.filled += 1
        if self.filled == len(self.buffer):
            self.flush()

    def flush(self) -> None:
        """Save what the buffer holds as the next shard file."""
        if self.filled:
            path = self.out / shard_name(len(self.shards))
            np.save(path, self.buffer[: self.filled])
            self.bytes += path.stat().st_size
            self.shards.append({"file": path.name, "count": self.filled})
            self.filled = 0


def _crop_all(
    files: list[Path], image_size: int, workers: int, writer: _ShardWriter, progress: bool
) -> tuple[list[str], list[tuple[Path, str]]]:
    """Every file cropped (by ``workers`` processes, or here for 0) into ``writer``, in order.
    Returns the sources stored and the files skipped as unreadable, with their reasons."""
    jobs = [(str(p), image_size) for p in files]
    sources: list[str] = []
    skipped: list[tuple[Path, str]] = []
    pool = multiprocessing.get_context().Pool(workers) if workers > 0 else None
    try:
        results = pool.imap(_crop_uint8, jobs, chunksize=8) if pool else map(_crop_uint8, jobs)
        for (path, _), (array, reason) in tqdm(
            zip(jobs, results), total=len(jobs), desc="preprocess", unit="img", disable=not progress
        ):
            if array is None:
                skipped.append((Path(path), reason or "unreadable"))
                log.warning("skipping unreadable image %s: %s", path, reason)
                continue
            writer.add(array)
            sources.append(path)
        writer.flush()
    finally:
        if pool is not None:
            pool.terminate()
    return sources, skipped


def _write_index(
    out: Path, root: str | Path, image_size: int, n_listed: int, shards: list[dict[str, Any]],
    sources: list[str], skipped: list[tuple[Path, str]],
) -> None:
    """``index.json``, written last and atomically: from now on ``out`` is a complete shard folder."""
    index = {
        "format": FORMAT,
        "version": VERSION,
        "image_size": image_size,
        "layout": LAYOUT,
        "crop": CROP,
        "root": str(Path(root).expanduser().resolve()),
        "count": len(sources),
        "n_listed": n_listed,
        "shards": shards,
        "sources": sources,
        "skipped": [{"path": str(p), "reason": r} for p, r in skipped],
    }
    with atomic_write(out / INDEX) as f:
        f.write(json.dumps(index, indent=1).encode())
    umask = os.umask(0)
    os.umask(umask)
    (out / INDEX).chmod(0o666 & ~umask)  # like the shards (np.save), not the temp file's 0600
