"""Stylize's limits and files (issue 14, findings 2 and 5): one cap on output pixels for every path,
checked before anything is decoded or stylized; a scale that leaves a few pixels is an error; outputs
in the input folder are not read back as inputs; an unwritable output folder is found before the
first image; the overwrite refusal names the input that would be lost. Tiny random-init networks."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from fast_style.checkpoint import save_checkpoint
from fast_style.errors import ConfigError, ImageError
from fast_style.images import load_image
from fast_style.stylize import Stylizer, plan_outputs, stylize_paths
from tests.helpers import perturbed, run_script


def photo(path, size=(64, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.effect_mandelbrot(size, (-2, -1.5, 1, 1.5), 20).convert("RGB").save(path)
    return path


class Counting(Stylizer):
    calls = 0

    def stylize_batch(self, batch):
        Counting.calls += 1
        return super().stylize_batch(batch)


def stylizer(**options) -> Counting:
    Counting.calls = 0
    return Counting(perturbed(), device="cpu", **options)


@pytest.fixture
def ckpt(tmp_path):
    model = perturbed()
    return save_checkpoint({"model_config": model.config.to_dict(), "model": model.state_dict(), "style": "sty"},
                           tmp_path / "sty.pt")


@pytest.mark.slow  # a script in a subprocess
def test_scale_up_past_the_cap_is_refused_before_decoding(tmp_path, ckpt):
    src = photo(tmp_path / "p.png")
    result = run_script("stylize.py", f"ckpt={ckpt}", f"input={src}", "scale=100", f"output={tmp_path / 'o.png'}",
                        "device=cpu", timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "6400x4800" in result.stderr and "max_pixels" in result.stderr and "scale" in result.stderr
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("tile_size", [None, 64])
def test_one_cap_for_whole_and_tiled_images(tmp_path, tile_size):
    src = photo(tmp_path / "p.png")
    s = stylizer(tile_size=tile_size, max_pixels=64 * 48 - 1)
    with pytest.raises(ConfigError, match="max_pixels"):
        stylize_paths(s, src, tmp_path / "o.png", progress=False)
    assert Counting.calls == 0
    with pytest.raises(ConfigError, match="max_pixels"):
        s(torch.rand(1, 3, 48, 64))  # the Python API (and the video path) go through the same check
    assert len(stylize_paths(stylizer(tile_size=tile_size, max_pixels=64 * 48), src, tmp_path / "o.png",
                             progress=False)[0]) == 1


def test_whole_image_passes_have_a_lower_automatic_cap_than_tiles():
    from fast_style.stylize import output_pixel_limit

    assert output_pixel_limit("auto", tiled=False) < output_pixel_limit("auto", tiled=True)
    assert output_pixel_limit(1000, tiled=False) == output_pixel_limit(1000, tiled=True) == 1000


def test_a_folder_with_one_oversized_image_stylizes_the_rest(tmp_path):
    photo(tmp_path / "in" / "small.png", (32, 32))
    photo(tmp_path / "in" / "big.png", (64, 64))
    written, errors = stylize_paths(stylizer(max_pixels=40 * 40), tmp_path / "in", tmp_path / "out", progress=False)
    assert [p.name for p in written] == ["small_style.png"]
    assert len(errors) == 1 and "big.png" in errors[0] and "max_pixels" in errors[0]


def test_a_scale_that_leaves_a_few_pixels_is_an_error(tmp_path):
    src = photo(tmp_path / "p.png")
    with pytest.raises(ConfigError, match=r"scale=0.001.*1x1"):
        stylize_paths(stylizer(), src, tmp_path / "o.png", scale=0.001, progress=False)
    assert Counting.calls == 0 and not (tmp_path / "o.png").exists()


def test_outputs_in_the_input_folder_are_not_inputs_next_time(tmp_path):
    folder = tmp_path / "in"
    photo(folder / "a.png")
    for _ in range(2):
        written, errors = stylize_paths(stylizer(), folder, folder, progress=False)
        assert [p.name for p in written] == ["a_style.png"] and not errors
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_style.png"]


def test_an_unwritable_output_folder_is_found_before_stylizing(tmp_path):
    photo(tmp_path / "in" / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"cannot write.*file"):
        stylize_paths(stylizer(), tmp_path / "in", blocker / "out", progress=False)
    assert Counting.calls == 0


def test_overwrite_refusal_names_the_input_that_would_be_lost(tmp_path):
    folder = tmp_path / "in"
    photo(folder / "a.png")
    photo(tmp_path / "out" / "a_sty.png")
    (folder / "ref.png").symlink_to(tmp_path / "out" / "a_sty.png")  # an input that lives where a.png's output goes
    with pytest.raises(ConfigError) as info:
        plan_outputs(folder, tmp_path / "out", "sty")
    message = str(info.value)
    assert message.endswith(f"overwriting the input image {folder / 'ref.png'}; choose another output"), message


def test_tiny_style_image_and_transparent_photos(tmp_path, caplog):
    from fast_style.styles import load_style_tensor

    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tiny)
    with pytest.raises(ImageError, match="1x1"):
        load_style_tensor(tiny, 64)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(rgba)
    opaque = tmp_path / "opaque.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 255)).save(opaque)
    with caplog.at_level(logging.WARNING):
        load_image(opaque, warn_alpha=True)
        assert not caplog.records
        stylize_paths(stylizer(), rgba, tmp_path / "o.png", progress=False)  # a photo the user named
    warnings = [r.getMessage() for r in caplog.records if "white" in r.getMessage()]
    assert len(warnings) == 1 and "rgba.png" in warnings[0] and "\n" not in warnings[0]


def test_oversized_style_image_is_not_told_about_tile_size(tmp_path, monkeypatch):
    from fast_style.styles import load_style_tensor

    big = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError) as info:
        load_style_tensor(big, 64)
    assert "tile_size" not in str(info.value) and "too many pixels" in str(info.value)


@pytest.mark.slow
def test_onnx_export_is_one_self_contained_file(tmp_path, ckpt):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from fast_style.export import export_checkpoint

    out = export_checkpoint(ckpt, "onnx", tmp_path / "deploy" / "sty.onnx")
    assert [p.name for p in out.parent.iterdir()] == ["sty.onnx"]
    moved = tmp_path / "elsewhere.onnx"
    out.rename(moved)  # copying only the .onnx must work
    session = ort.InferenceSession(str(moved))
    x = np.random.rand(1, 3, 20, 24).astype("float32")
    y = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert y.shape == (1, 3, 20, 24)
