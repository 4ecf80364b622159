"""Named styles: a style name resolves to an image file (explicit path > cache > download)."""

from __future__ import annotations

import io
import os
import urllib.request
from pathlib import Path

from PIL import Image

from fast_style.errors import ConfigError
from fast_style.fileio import atomic_write
from fast_style.images import load_image


def cache_dir() -> Path:
    """Where downloaded style images live: ``$FAST_STYLE_CACHE/styles`` (default ~/.cache/fast_style)."""
    root = os.environ.get("FAST_STYLE_CACHE") or Path.home() / ".cache" / "fast_style"
    return Path(root).expanduser() / "styles"


def resolve_style_image(
    name: str,
    image: str | None = None,
    url: str | None = None,
    filename: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Find the style image file for ``name``.

    ``image`` (``style.image=...``) always wins. Otherwise the file is looked up in the cache and,
    if missing, downloaded once from ``url`` into it, so the network is touched at most once.
    """
    if image:
        path = Path(image).expanduser()
        if not path.is_file():
            raise ConfigError(f"style.image={image}: no such file")
        load_image(path)  # fail now, with a clear message, rather than after the loss net is built
        return path
    if not url:
        raise ConfigError(
            f"style {name!r} has neither style.image nor style.url; pass style.image=/path/to/painting.jpg"
        )
    cached = cache_dir() / (filename or Path(url).name)
    if cached.is_file():
        return cached
    try:
        download(url, cached, timeout=timeout)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"style {name!r} is not cached at {cached} and could not be downloaded from {url} "
            f"({type(e).__name__}: {e}); copy the image there or pass style.image=/path/to/painting.jpg"
        ) from None
    return cached


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
