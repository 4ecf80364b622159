"""The flicker measurement behind tools/flicker.py and docs/FEATURES.md: test clips, in-memory
stylization identical to the video path, motion-compensated flicker. A small random-init network
(as in test_video.py): mechanics, not the trained numbers (those are in docs/FEATURES.md)."""

import pytest
import torch

from fast_style.images import load_image, to_tensor
from fast_style.measure import flicker, flicker_report, panned_clip, stylize_frames
from fast_style.stylize import Stylizer
from fast_style.video import SmoothedNet
from tests.helpers import perturbed

pytestmark = pytest.mark.slow  # a module fixture exports and runs a network on a video clip


@pytest.fixture(scope="module")
def stylizer():
    return Stylizer(perturbed(scale=0.1), style="test", device="cpu")


@pytest.fixture(scope="module")
def photo(photos_val) -> torch.Tensor:
    return to_tensor(load_image(sorted(photos_val.glob("*.jpg"))[1]))[:, :96, :160]


@pytest.fixture(scope="module")
def shared_photo(shared_photos_val) -> torch.Tensor:
    """The shared photo the smoothing measurement was made on (a perturbed net, so whether the
    EMA lowers flicker depends on the content: it does not on every crop of the sample)."""
    return to_tensor(load_image(sorted(shared_photos_val.glob("*.jpg"))[1]))[:, :96, :160]


def test_panned_clip_and_compensated_flicker(photo):
    clip = panned_clip(photo, frames=12, size=(64, 96), step=2)
    assert clip.shape == (12, 3, 64, 96)
    assert torch.equal(clip[5, ..., :-2], clip[4, ..., 2:])  # a pure pan, 2 px per frame
    assert flicker(clip) > 0.01 and flicker(clip, shift=2) == 0.0  # motion alone, fully compensated
    static = panned_clip(photo, frames=12, size=(64, 96), step=0, noise=4 / 255)
    # |n1 - n2| of two N(0, s^2) has mean 2s/sqrt(pi); 8-bit rounding and clamping change it a little
    assert flicker(static) == pytest.approx(2 * (4 / 255) / 3.14159 ** 0.5, rel=0.15)
    with pytest.raises(Exception, match="too small"):
        panned_clip(photo, frames=100, size=(64, 96))


def test_stylize_frames_is_the_video_path(stylizer, photo):
    clip = panned_clip(photo, frames=6, size=(32, 48), step=1)
    plain = stylize_frames(stylizer, clip, 0.0, batch_size=4)
    expected = stylizer(clip).mul(255).round().div(255)
    assert torch.allclose(plain, expected, atol=1 / 255 + 1e-6)
    smoothed = stylize_frames(stylizer, clip, 0.8, batch_size=4)
    # frame by frame, in order: the same EMA
    frames = stylizer.with_network(SmoothedNet(stylizer.model, 0.8, stylizer.style_weights))
    with torch.no_grad():
        one_by_one = torch.cat([frames.stylize_batch(f[None]) for f in clip]).mul(255).round().div(255)
    assert torch.allclose(smoothed, one_by_one, atol=1 / 255 + 1e-6)


def test_smoothing_lowers_the_measured_flicker(stylizer, shared_photo):
    photo = shared_photo
    clip = panned_clip(photo, frames=12, size=(64, 96), step=1)
    rows = flicker_report(stylizer, clip, (0.0, 0.9), shift=1)
    assert rows[0]["input"] == rows[1]["input"] == flicker(clip) and rows[0]["input_compensated"] == 0.0
    assert rows[1]["compensated"] < rows[0]["compensated"], rows
    assert rows[1]["excess"] == pytest.approx(rows[1]["flicker"] - rows[1]["input"])
