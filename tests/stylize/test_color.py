"""Colour preservation on a known colour image."""

import pytest
import torch

from fast_style.color import match_color, preserve_luminance, rgb_to_ycbcr, ycbcr_to_rgb


def colourful(h: int = 24, w: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.8 - 0.5 * xx * yy])  # in (0, 1)


def test_ycbcr_round_trip_and_known_values():
    x = colourful()
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)
    grey = torch.full((3, 2, 2), 0.5)
    ycc = rgb_to_ycbcr(grey)
    assert torch.allclose(ycc[0], torch.full((2, 2), 0.5)) and ycc[1:].abs().max() < 1e-6
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert rgb_to_ycbcr(red).flatten().tolist() == pytest.approx([0.299, -0.168736, 0.5], abs=1e-6)


def test_luminance_mode_keeps_the_photos_chroma_and_the_stylized_luminance():
    photo = 0.3 + 0.4 * colourful()  # moderate colours, so the recombination stays in gamut
    stylized = 0.4 + 0.2 * torch.rand(3, 24, 32)  # other colours, textured
    out = preserve_luminance(stylized, photo)
    ycc_out, ycc_photo, ycc_sty = rgb_to_ycbcr(out), rgb_to_ycbcr(photo), rgb_to_ycbcr(stylized)
    assert torch.allclose(ycc_out[1:], ycc_photo[1:], atol=2e-3)  # chroma from the photo
    assert torch.allclose(ycc_out[0], ycc_sty[0], atol=2e-3)  # luminance from the stylization
    assert not torch.allclose(ycc_sty[1:], ycc_photo[1:], atol=2e-3)  # it really changed something


def test_luminance_mode_resizes_the_photo_and_handles_batches():
    photo = colourful(48, 64).expand(2, 3, 48, 64)
    out = preserve_luminance(torch.rand(2, 3, 24, 32), photo)
    assert out.shape == (2, 3, 24, 32) and out.min() >= 0 and out.max() <= 1


def test_histogram_mode_matches_mean_and_covariance():
    torch.manual_seed(0)
    style = torch.rand(3, 40, 40) * torch.tensor([0.3, 0.9, 0.5]).view(3, 1, 1)
    photo = colourful(30, 30)
    out = match_color(style, photo)
    for a, b in ((out, photo),):
        pa, pb = a.reshape(3, -1), b.reshape(3, -1)
        assert torch.allclose(pa.mean(1), pb.mean(1), atol=1e-3)
        assert torch.allclose(torch.cov(pa), torch.cov(pb), atol=2e-3)
    assert out.shape == style.shape
