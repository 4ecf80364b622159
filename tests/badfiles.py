"""Generate the awkward files real photo folders contain, in a temporary folder (no binary junk in git).

Each maker writes one file and returns its path. ``BAD`` files cannot be used (training skips
them, stylize reports them); ``ODD`` files are valid images in unusual shapes that must work
(training crops them, stylize writes RGB). ``make_all`` writes one of each.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def _photo(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    """A smooth gradient with noise: compresses like a photo, so truncation hits pixel data."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200
    return Image.fromarray(np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8))


# ---- bad: unusable files -------------------------------------------------------------------

def truncated_jpeg(folder: Path, name: str = "truncated.jpg") -> Path:
    """A real JPEG cut off in the middle of its pixel data: the header is fine, decoding fails."""
    buf = io.BytesIO()
    _photo(64, 64, seed=1).save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    path = folder / name
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_png(folder: Path, name: str = "truncated.png") -> Path:
    buf = io.BytesIO()
    _photo(64, 64, seed=2).save(buf, format="PNG")
    data = buf.getvalue()
    path = folder / name
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def zero_bytes(folder: Path, name: str = "empty.jpg") -> Path:
    path = folder / name
    path.write_bytes(b"")
    return path


def html_as_jpg(folder: Path, name: str = "download_error.jpg") -> Path:
    """What a failed download often saves: an HTML error page with an image name."""
    path = folder / name
    path.write_text("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
                    "<body><h1>Not Found</h1></body></html>\n")
    return path


def text_as_png(folder: Path, name: str = "notes.png") -> Path:
    path = folder / name
    path.write_bytes(b"these are not pixels\n" * 20)
    return path


def random_bytes_as_webp(folder: Path, name: str = "noise.webp") -> Path:
    path = folder / name
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb(folder: Path, name: str = "bomb.png", side: int = 20000) -> Path:
    """A valid, tiny (~400 KB) PNG that decodes to side x side pixels (400 Mpx at the default):
    more than Pillow's decompression-bomb limit. Written chunk by chunk, never held in memory."""
    path = folder / name
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + one greyscale byte per pixel
    parts = [comp.compress(row) for _ in range(side)]
    idat = b"".join(parts) + comp.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))
    return path


# ---- odd but valid: must work --------------------------------------------------------------

def grayscale(folder: Path, name: str = "gray.jpg") -> Path:
    path = folder / name
    _photo(44, 36, seed=4).convert("L").save(path)
    return path


def rgba(folder: Path, name: str = "rgba.png") -> Path:
    path = folder / name
    img = _photo(40, 44, seed=5).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize(img.size))
    img.save(path)
    return path


def palette(folder: Path, name: str = "palette.png") -> Path:
    path = folder / name
    _photo(36, 40, seed=6).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path)
    return path


def palette_transparent_gif_as_png(folder: Path, name: str = "palette_transparent.png") -> Path:
    path = folder / name
    img = _photo(40, 40, seed=7).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    img.save(path, transparency=0)
    return path


def cmyk_jpeg(folder: Path, name: str = "cmyk.jpg") -> Path:
    path = folder / name
    _photo(40, 36, seed=8).convert("CMYK").save(path, format="JPEG")
    return path


def png16(folder: Path, name: str = "deep16.png") -> Path:
    """16-bit greyscale PNG (mode I;16), values spread over the full 0-65535 range."""
    path = folder / name
    arr = (np.linspace(0, 65535, 40 * 48).reshape(40, 48)).astype(np.uint16)
    Image.fromarray(arr).save(path)
    return path


def exif_rotated(folder: Path, name: str = "rotated.jpg", w: int = 48, h: int = 32) -> Path:
    """A w x h JPEG whose EXIF says "rotate 90° clockwise" (orientation 6): shown as h x w."""
    path = folder / name
    exif = Image.Exif()
    exif[0x0112] = 6
    _photo(w, h, seed=9).save(path, format="JPEG", exif=exif)
    return path


def tiny(folder: Path, name: str = "tiny.png") -> Path:
    """3 x 2 pixels: far smaller than any training crop."""
    path = folder / name
    _photo(3, 2, seed=10).save(path)
    return path


def single_pixel(folder: Path, name: str = "pixel.bmp") -> Path:
    path = folder / name
    Image.new("RGB", (1, 1), (200, 30, 30)).save(path)
    return path


BAD: dict[str, Callable[[Path], Path]] = {
    "truncated_jpeg": truncated_jpeg,
    "truncated_png": truncated_png,
    "zero_bytes": zero_bytes,
    "html_as_jpg": html_as_jpg,
    "text_as_png": text_as_png,
    "random_bytes_as_webp": random_bytes_as_webp,
    "decompression_bomb": decompression_bomb,
}

ODD: dict[str, Callable[[Path], Path]] = {
    "grayscale": grayscale,
    "rgba": rgba,
    "palette": palette,
    "palette_transparent": palette_transparent_gif_as_png,
    "cmyk_jpeg": cmyk_jpeg,
    "png16": png16,
    "exif_rotated": exif_rotated,
    "tiny": tiny,
    "single_pixel": single_pixel,
}


def make_all(folder: Path, kinds: dict[str, Callable[[Path], Path]] | None = None) -> dict[str, Path]:
    """Write one file of each kind (default: BAD and ODD) into ``folder``; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds = kinds if kinds is not None else {**BAD, **ODD}
    return {kind: make(folder) for kind, make in kinds.items()}
