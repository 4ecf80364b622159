"""Named styles: a style name resolves to an image file (explicit path > shipped > cache > download).

Public-domain paintings travel with the package (``fast_style/sample/styles/<name>.jpg``, sources
and licences in ``fast_style/sample/README.md``), so those styles work offline on a fresh clone;
modern works are never shipped and keep downloading into the cache on first use.

``style.preserve_color=histogram`` recolours the loaded style image with the colour statistics
of the training photos before its Grams are computed (:func:`match_training_colors`).
"""

from __future__ import annotations

import io
import logging
import os
import random
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

from fast_style.color import color_stats, match_color_stats
from fast_style.data import SAMPLE_DIR, ShardDataset, is_shard_dir, list_images
from fast_style.errors import ConfigError, ImageError
from fast_style.fileio import atomic_write, cache_root, safe_name
from fast_style.images import batch_from_image, load_batch, load_image

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where downloaded style images live: ``styles`` in :func:`fast_style.fileio.cache_root`
    (``$FAST_STYLE_CACHE``, ``$XDG_CACHE_HOME/fast_style``, ``~/.cache/fast_style``)."""
    return cache_root() / "styles"


SHIPPED_STYLES = SAMPLE_DIR / "styles"


def shipped_style_image(name: str) -> Path | None:
    """The painting shipped for style ``name`` (``fast_style/sample/styles/<name>.jpg``), or None."""
    path = SHIPPED_STYLES / f"{safe_name(name)}.jpg"
    return path if path.is_file() else None


def resolve_style_image(
    name: str,
    image: str | None = None,
    url: str | None = None,
    filename: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Find the style image file for ``name``.

    ``image`` (``style.image=...``) always wins. Otherwise a painting shipped with the package
    (:func:`shipped_style_image`) is used, then the cache and, if missing, one download from
    ``url`` into the cache, so the network is touched at most once and never for a shipped style.
    """
    if image:
        path = Path(image).expanduser()
        if not path.is_file():
            raise ConfigError(f"style.image={image}: no such file")
        load_image(path)  # fail now, with a clear message, rather than after the loss net is built
        return path
    shipped = shipped_style_image(name)
    if shipped is not None:
        return shipped
    if not url:
        raise ConfigError(
            f"style {name!r} has neither style.image nor style.url; pass style.image=/path/to/painting.jpg"
        )
    # filename and url may come from a checkpoint's stored config: one path component, never ../
    cached = cache_dir() / safe_name(filename or Path(url).name, f"{safe_name(name)}.jpg")
    if cached.is_file():
        problem = cached_image_problem(cached)
        if problem is None:
            return cached
        log.warning("style cache entry %s: %s; downloading it again", cached, problem)
    try:
        download(url, cached, timeout=timeout)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"style {name!r} is not cached at {cached} and could not be downloaded from {url} "
            f"({type(e).__name__}: {e}); copy the image there or pass style.image=/path/to/painting.jpg"
        ) from None
    return cached


def cached_image_problem(path: Path) -> str | None:
    """Why a cached painting cannot be used (truncated by a full disk, overwritten with an HTML
    error page, ...), or None: such an entry is downloaded again instead of failing the run."""
    try:
        with Image.open(path) as img:
            img.load()  # decodes the pixels: a file cut short fails here, not at training time
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return f"not a readable image ({type(e).__name__})"
    return None


def stored_style_image(style: Mapping[str, Any], image: str | None = None) -> Path:
    """The image of a style as a checkpoint stores it (``config["style"]``, an entry of
    ``config["styles"]``: plain dicts); ``image`` overrides the stored path. Evaluation and the
    docs figures re-read a trained network's painting this way."""
    return resolve_style_image(
        style.get("name", "style"), image or style.get("image"), style.get("url"), style.get("filename")
    )


def download(url: str, dest: Path, timeout: float = 30.0) -> Path:
    """Download, check that the bytes are an image, then write ``dest`` atomically.

    Paintings are a few MB, so the check runs in memory and a bad download never reaches the cache.
    """
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = response.read()
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ValueError(f"downloaded file is not an image: {url}") from None
    with atomic_write(dest) as f:
        f.write(data)
    return dest


# A style image smaller than this on a side has next to no texture for the Grams to capture;
# it is upscaled to style.size anyway, so such a file is almost certainly a mistake.
MIN_STYLE_SIDE = 16


def load_style_tensor(path: str | os.PathLike, size: int) -> torch.Tensor:
    """The style image with its longer side at ``size`` px, as a (1, 3, H, W) batch; a file too
    small to hold any texture is refused (see :data:`MIN_STYLE_SIDE`)."""
    image = load_image(path, too_big_hint="shrink it first: it is resized to style.size px anyway", warn_alpha=True)
    if min(image.size) < MIN_STYLE_SIDE:
        raise ImageError(
            f"{path}: style image is only {image.size[0]}x{image.size[1]} px; a style needs at least "
            f"{MIN_STYLE_SIDE} px per side (its textures are what the network learns)"
        )
    return batch_from_image(image, size)


def photo_color_stats(
    root: str | os.PathLike, n: int = 64, size: int = 256, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB mean and covariance of the pixels of ``n`` photos of a folder (a seeded sample, each
    resized to long side ``size``; unreadable files are skipped). What "the training photos'
    colours" means for a network that sees thousands of them."""
    if is_shard_dir(root):  # preprocessed shards (scripts/preprocess.py): the stored crops
        shards = ShardDataset(root, what="data.root")
        picks = sorted(random.Random(seed).sample(range(len(shards)), min(n, len(shards))))
        if not picks:
            raise ConfigError(f"style.preserve_color: no photos in the shards at {root}")
        return color_stats(shards[i] for i in picks)
    files = list_images(root)
    sample = sorted(random.Random(seed).sample(files, min(n, len(files))))

    def images() -> Iterator[torch.Tensor]:
        for path in sample:
            try:
                yield load_batch(path, size)[0]
            except ImageError as e:
                log.warning("colour statistics: skipping %s", e)

    try:
        return color_stats(images())
    except ValueError:
        raise ConfigError(f"style.preserve_color: no readable photo among {len(sample)} sampled in {root}") from None


class StyleSettings(Protocol):
    """The part of a style's config colour matching reads (config.StyleConfig has it)."""

    name: str
    preserve_color: str | None


class StyleImage(Protocol):
    """A style image with its settings (train.StyleTarget is one)."""

    config: StyleSettings
    image: torch.Tensor


def match_training_colors(targets: Sequence[StyleImage], run_mode: str | None, photos: str | os.PathLike,
                          seed: int) -> None:
    """``style.preserve_color=histogram`` (Gatys et al. 2016, colour histogram matching before
    training): replace each style image (``target.image``, (1, 3, H, W)) by one with the RGB mean
    and covariance of a seeded sample of the training ``photos`` (a folder or shards), so the
    network learns the painting's strokes but not its palette. A style's own ``preserve_color``
    wins; otherwise the run's (``run_mode``: ``style.preserve_color``) applies to every style
    (multi-style runs too). In place; no-op when off."""
    stats = None
    for t in targets:
        mode = t.config.preserve_color or run_mode
        if not mode:  # else histogram, the one mode TrainConfig.validate lets through
            continue
        if stats is None:
            stats = photo_color_stats(photos, seed=seed)
        t.image = match_color_stats(t.image, *stats)
        log.info("style %s: colours matched to the training photos (style.preserve_color=%s)", t.config.name, mode)
