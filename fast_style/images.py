"""Reading and writing images: the one place that knows about EXIF, odd modes and atomic saves."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fast_style.errors import ImageError
from fast_style.fileio import atomic_write

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB the way a person would expect to see it.

    Transparency is composited on white (not black, PIL's default for RGBA -> RGB), 16-bit
    greyscale is scaled down rather than clipped, CMYK goes through PIL's conversion.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = torch.from_numpy(__import__("numpy").asarray(img, dtype="float64"))
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = (arr / top * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def has_transparency(img: Image.Image) -> bool:
    """Whether any pixel is not fully opaque (an alpha channel that is all 255 does not count)."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La"):
        return False
    bands = img.getbands()
    alpha = bands.index("A") if "A" in bands else bands.index("a")
    low, _ = img.getchannel(alpha).getextrema()
    return low < 255


def load_image(
    path: str | os.PathLike, allow_huge: bool = False, too_big_hint: str = "", warn_alpha: bool = False
) -> Image.Image:
    """Open an image as RGB with its EXIF orientation applied; any failure is one ImageError line.

    Pillow refuses images over ~179 MP (decompression-bomb guard), right for folders of photos
    from anywhere. ``allow_huge`` lifts it for a file the user named for tiled stylization,
    where big is the point (memory is then the decoded image, 3 bytes per pixel, and the tiles).
    ``too_big_hint``: what the caller's user can do about such a file (stylize: tile_size), added
    to the refusal. Transparent pixels are composited on white; ``warn_alpha`` says so in one
    warning line (for files a user names: photos to stylize, style images; not for every
    training photo at every epoch).
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            if allow_huge:
                Image.MAX_IMAGE_PIXELS = None
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                if warn_alpha and has_transparency(img):
                    log.warning("%s: has transparent pixels; they are composited on white", path)
                return to_rgb(img)
    except Image.DecompressionBombError as e:
        hint = f"; {too_big_hint}" if too_big_hint else ""
        raise ImageError(f"{path}: refused, too many pixels ({e}){hint}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: corrupt or truncated image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) float32 in [0, 1].

    8-bit RGB (what :func:`load_image` returns) is converted here, exactly as torchvision's
    ``to_tensor`` does; importing torchvision costs a stylize run over a second of start-up
    (it pulls in torch._dynamo), so it is imported only for other modes."""
    if img.mode == "RGB":
        return torch.from_numpy(np.array(img, np.uint8, copy=True)).permute(2, 0, 1).contiguous().float().div(255)
    import torchvision.transforms.functional as TF

    return TF.to_tensor(img)


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) float in [0, 1] -> PIL RGB (values outside the range are clamped,
    NaN, e.g. a sample of a diverged network, is black)."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError("to_pil takes one image; use make_grid for batches")
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"to_pil takes a (3, H, W) or (1, H, W) image, got shape {tuple(tensor.shape)}")
    # x255 then truncation to 8 bits, as torchvision's to_pil_image (outputs unchanged)
    pixels = tensor.detach().float().nan_to_num(0.0).clamp(0, 1).cpu().mul(255).byte()
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0].numpy(), "L")
    return Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy(), "RGB")


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size``, bicubic: the training crop's resize (shards store exactly this)."""
    return scale_image(img, size / min(img.size), Image.Resampling.BICUBIC)


def resize_long_side(img: Image.Image, size: int) -> Image.Image:
    """Longer side to ``size``, Lanczos: style images and photos to evaluate or optimise."""
    return scale_image(img, size / max(img.size))


def batch_from_image(img: Image.Image, long_side: int) -> torch.Tensor:
    """``img`` with its longer side resized to ``long_side`` px as a (1, 3, H, W) float batch in
    [0, 1]: how every style image, evaluation photo and optimisation target enters a network."""
    return to_tensor(resize_long_side(img, long_side)).unsqueeze(0)


def load_batch(path: str | os.PathLike, long_side: int, **load_options) -> torch.Tensor:
    """:func:`load_image` (``load_options`` are its keywords) then :func:`batch_from_image`."""
    return batch_from_image(load_image(path, **load_options), long_side)


def scale_image(img: Image.Image, scale: float, resample: Image.Resampling = Image.Resampling.LANCZOS) -> Image.Image:
    """Both sides times ``scale`` (rounded, at least 1 px); ``scale == 1`` returns ``img`` itself."""
    if scale == 1.0:
        return img
    w, h = img.size
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)


# zlib level of written PNGs: 1 writes a 1024² stylization in 0.06 s against Pillow's default 6's
# 0.29 s, for files ~18% larger (docs/PERFORMANCE.md, "Folders"); a folder of big PNGs waited on it.
PNG_LEVEL = 1


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write atomically (:func:`fast_style.fileio.atomic_write`): never a half-written image."""
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown output format; use one of {', '.join(SAVE_FORMATS)}")
    img = image if isinstance(image, Image.Image) else to_pil(image)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {"compress_level": PNG_LEVEL} if fmt == "PNG" else {}
    with atomic_write(path) as f:
        img.save(f, format=fmt, **options)
    return path


def image_grid(rows: list[torch.Tensor], padding: int = 2) -> torch.Tensor:
    """Stack equally sized (B, 3, H, W) batches as rows of one (3, H', W') grid image."""
    from torchvision.utils import make_grid  # lazy: see to_tensor

    batch = torch.cat([r.detach().float().nan_to_num(0.0).clamp(0, 1).cpu() for r in rows])
    return make_grid(batch, nrow=rows[0].shape[0], padding=padding, pad_value=1.0)
