import io

import numpy as np
import pytest
import torch
from PIL import Image

from fast_style.errors import ImageError
from fast_style.images import image_grid, load_image, save_image, to_pil, to_tensor


def test_modes_become_rgb(tmp_path):
    Image.new("L", (4, 3), 100).save(tmp_path / "gray.png")
    Image.new("RGBA", (4, 3), (255, 0, 0, 0)).save(tmp_path / "clear.png")  # fully transparent red
    p = Image.new("P", (4, 3))
    p.putpalette([0, 0, 255] * 256)
    p.save(tmp_path / "pal.png")
    Image.new("CMYK", (4, 3), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    arr16 = np.full((3, 4), 65535 // 2, dtype=np.uint16)
    Image.fromarray(arr16).save(tmp_path / "deep.png")
    assert load_image(tmp_path / "gray.png").getpixel((0, 0)) == (100, 100, 100)
    assert load_image(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)  # on white
    assert load_image(tmp_path / "pal.png").getpixel((0, 0)) == (0, 0, 255)
    r, g, b = load_image(tmp_path / "cmyk.jpg").getpixel((1, 1))
    assert r > 200 and g < 60 and b < 60
    deep = load_image(tmp_path / "deep.png")
    assert deep.mode == "RGB" and abs(deep.getpixel((0, 0))[0] - 127) <= 1


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (6, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    shown = load_image(tmp_path / "rot.jpg")
    assert shown.size == (2, 6)


def test_bad_files_raise_one_line_image_errors(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "page.jpg").write_text("<html>not an image</html>")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:200])
    for name in ("empty.jpg", "page.jpg", "cut.jpg", "missing.jpg"):
        with pytest.raises(ImageError) as e:
            load_image(tmp_path / name)
        assert name in str(e.value) and "\n" not in str(e.value)


def test_save_is_atomic_and_round_trips(tmp_path):
    x = torch.rand(3, 10, 12)
    path = save_image(x, tmp_path / "sub" / "o.png")
    assert sorted(p.name for p in path.parent.iterdir()) == ["o.png"]
    back = to_tensor(load_image(path))
    assert (back - x).abs().max() <= 1 / 255 + 1e-6
    with pytest.raises(ImageError, match="unknown output format"):
        save_image(x, tmp_path / "o.gif2")


def test_grid_and_pil_conversion():
    rows = [torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)]
    grid = image_grid(rows, padding=2)
    assert grid.shape == (3, 2 + 2 * 10, 2 + 2 * 10)
    assert to_pil(torch.full((3, 2, 2), 2.0)).getpixel((0, 0)) == (255, 255, 255)


def test_png_is_written_losslessly_at_the_fast_zlib_level(tmp_path):
    """Written PNGs use zlib level 1 (images.PNG_LEVEL: ~5x faster than Pillow's default 6 on a
    1024² stylization) and still read back bit for bit."""
    import zlib

    from fast_style.images import PNG_LEVEL

    pixels = torch.rand(3, 96, 128)
    path = save_image(pixels, tmp_path / "out.png")
    data = path.read_bytes()
    start = data.index(b"IDAT") + 4
    assert data[start + 1] & 0xC0 == 0x00 and PNG_LEVEL == 1  # zlib FLEVEL 0: the fastest levels
    assert zlib.decompress(data[start:data.index(b"IEND") - 8])  # one IDAT chunk, a valid stream
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(to_pil(pixels)))
