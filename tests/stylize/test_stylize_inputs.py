"""stylize on every kind of awkward input: valid odd images give RGB outputs of the right size,
bad files give one error line each while the rest of the folder goes on, inputs are never
overwritten. Uses an untrained 8-channel network: this checks file handling, not style."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from fast_style.checkpoint import save_checkpoint
from fast_style.errors import ConfigError
from fast_style.models import ImageTransformNet, TransformerConfig
from fast_style.stylize import Stylizer, stylize_paths
from tests import badfiles
from tests.helpers import run_script

EXPECTED_SIZE = {"exif_rotated": (32, 48), "tiny": (3, 2), "single_pixel": (1, 1)}


@pytest.fixture
def stylizer() -> Stylizer:
    torch.manual_seed(0)
    return Stylizer(ImageTransformNet(TransformerConfig(width=8, n_residual=1)), style="sn", device="cpu")


@pytest.mark.parametrize("kind", sorted(badfiles.ODD))
def test_odd_valid_input_gives_an_rgb_output(tmp_path, stylizer, kind):
    src = badfiles.ODD[kind](tmp_path)
    written, errors = stylize_paths(stylizer, src, tmp_path / "out", progress=False)
    assert not errors and len(written) == 1
    with Image.open(src) as original, Image.open(written[0]) as out:
        assert out.mode == "RGB"
        assert out.size == EXPECTED_SIZE.get(kind, original.size)


@pytest.mark.parametrize("kind", sorted(badfiles.BAD))
def test_bad_input_file_is_one_error_line(tmp_path, stylizer, kind):
    src = badfiles.BAD[kind](tmp_path)
    written, errors = stylize_paths(stylizer, src, tmp_path / "out", progress=False)
    assert not written and len(errors) == 1
    assert str(src) in errors[0] and "\n" not in errors[0]


@pytest.mark.slow
def test_folder_of_everything_goes_on_past_bad_files(tmp_path, stylizer):
    made = badfiles.make_all(tmp_path / "in")
    snapshot = {p: p.read_bytes() for p in made.values()}
    written, errors = stylize_paths(stylizer, tmp_path / "in", tmp_path / "in", progress=False)  # output = input folder
    assert len(written) == len(badfiles.ODD) and len(errors) == len(badfiles.BAD)
    assert {p.name for p in written} == {f"{made[k].stem}_sn.png" for k in badfiles.ODD}
    assert all(p.read_bytes() == data for p, data in snapshot.items())  # no input touched


def test_output_paths_that_would_overwrite_an_input_are_refused(tmp_path, stylizer):
    photo = badfiles.grayscale(tmp_path, "photo.png")
    before = photo.read_bytes()
    with pytest.raises(ConfigError, match="overwriting the input"):
        stylize_paths(stylizer, photo, photo, progress=False)
    with pytest.raises(ConfigError, match="overwriting the input"):
        stylize_paths(stylizer, photo, tmp_path / "." / "photo.png", progress=False)  # same file, other spelling
    # a folder holding a file named like this style's output of another photo: since issue 14 it
    # is taken for an earlier output (not an input, README) and replaced; the photo is untouched
    badfiles.rgba(tmp_path, "photo_sn.png")
    written, errors = stylize_paths(stylizer, tmp_path, tmp_path, progress=False)
    assert [p.name for p in written] == ["photo_sn.png"] and not errors
    assert photo.read_bytes() == before


@pytest.mark.slow  # a script in a subprocess
def test_script_exit_code_says_whether_anything_failed(tmp_path):
    ckpt = save_checkpoint(
        {"model_config": {"width": 8, "n_residual": 1},
         "model": ImageTransformNet(TransformerConfig(width=8, n_residual=1)).state_dict(), "style": "sn"},
        tmp_path / "sn.pt",
    )
    made = badfiles.make_all(tmp_path / "in")
    result = run_script("stylize.py", f"ckpt={ckpt}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}")
    assert result.returncode == 1
    assert f"{len(badfiles.BAD)} of {len(made)} image(s) failed" in result.stderr
    for kind in badfiles.BAD:
        assert sum(str(made[kind]) in line for line in result.stderr.splitlines()) == 1, kind
    assert "Traceback" not in result.stderr
    ok = run_script("stylize.py", f"ckpt={ckpt}", f"input={made['cmyk_jpeg']}", f"output={tmp_path / 'one.png'}")
    assert ok.returncode == 0 and (tmp_path / "one.png").is_file()
