"""Colour preservation before optimizing and before training (Gatys et al. 2016).

A red photo and a blue painting: optimised without the option the result turns blue; with
``preserve_color=histogram`` (style recoloured with the photo's colours) or ``luminance``
(luminance-only optimisation, the photo's chroma put back) its mean chroma stays the photo's.
vgg19_caffe (real weights, offline) at 64 px and a few L-BFGS iterations; training: the tiny
random-VGG configuration of test_multistyle_training.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fast_style.color import color_stats, grey, luminance, match_color_stats, match_luminance, rgb_to_ycbcr
from fast_style.config import StyleConfig, train_config_from_dict
from fast_style.errors import ConfigError
from fast_style.images import load_image, resize_long_side, to_pil, to_tensor
from fast_style.loggers import NullLogger
from fast_style.losses import LossConfig
from fast_style.models import build_loss_net
from fast_style.optimize import (
    GATYS_CONTENT_LAYER,
    GATYS_STYLE_LAYERS,
    build_criterion,
    color_preserving_style,
    optimize_multiscale,
)
from fast_style.styles import load_style_tensor, photo_color_stats
from fast_style.train import load_style_targets, train
from tests.helpers import REPO, run_script
from tests.train.test_multistyle_training import make_photos, multi_config

RED = torch.tensor([1.0, 0.35, 0.3]).view(3, 1, 1)
BLUE = torch.tensor([0.3, 0.45, 1.0]).view(3, 1, 1)


def mean_chroma(x: torch.Tensor) -> torch.Tensor:
    """Mean (Cb, Cr) of a (1,) 3, H, W image."""
    return rgb_to_ycbcr(x.reshape(-1, *x.shape[-3:])).mean(dim=(0, 2, 3))[1:]


def _red(photos: Path) -> Image.Image:
    photo = to_tensor(resize_long_side(load_image(sorted(photos.glob("*.jpg"))[3]), 64))
    return to_pil((photo * RED + torch.tensor([0.1, 0.0, 0.0]).view(3, 1, 1)).clamp(0, 1))


@pytest.fixture(scope="module")
def red_photo(photos_val) -> Image.Image:
    return _red(photos_val)


@pytest.fixture(scope="module")
def shared_red_photo(shared_photos_val) -> Image.Image:
    """The measured thresholds below were calibrated on this shared photo (a bright one)."""
    return _red(shared_photos_val)


@pytest.fixture(scope="module")
def blue_style(style_image) -> torch.Tensor:
    return (load_style_tensor(style_image, 64) * BLUE).clamp(0, 1)


@pytest.fixture(scope="module")
def loss_net():
    return build_loss_net("vgg19_caffe", "imagenet", ("relu1_1", "relu5_1"))


def optimized(loss_net, photo: Image.Image, style: torch.Tensor, mode: str | None) -> torch.Tensor:
    # 10x Gatys' style weight: colour moves sooner
    cfg = LossConfig(content_weight=1e4, style_weight=6.5e7, tv_weight=1e2, normalize=False,
                     content_layer=GATYS_CONTENT_LAYER, style_layers=GATYS_STYLE_LAYERS)
    style = color_preserving_style(style, to_tensor(photo), mode)
    criterion = build_criterion(loss_net, style, cfg)
    (result,) = optimize_multiscale(criterion, photo, [64], max_iter=12, progress=False, preserve_color=mode)
    return result.image


@pytest.mark.slow
def test_optimize_keeps_the_photos_chroma_with_preserve_color(loss_net, shared_red_photo, blue_style):
    red_photo = shared_red_photo
    photo = to_tensor(red_photo)
    target, blue = mean_chroma(photo), mean_chroma(blue_style)
    assert target[1] > 0.1 and blue[0] > 0.05  # really red, really blue
    towards_blue = (blue - target) / (blue - target).norm()
    drift, shift, blueward = {}, {}, {}
    for mode in (None, "histogram", "luminance"):
        out = optimized(loss_net, red_photo, blue_style, mode)
        assert out.shape == photo.unsqueeze(0).shape
        drift[mode] = (mean_chroma(out) - target).norm().item()  # how far the mean chroma moved
        blueward[mode] = ((mean_chroma(out) - target) @ towards_blue).item()
        shift[mode] = (luminance(out) - luminance(photo)).abs().mean().item()  # how much the strokes did
    # 12 L-BFGS iterations from the photo (measured: 0.021 / 0.002 / 0.0001): without the option
    # the mean chroma moves towards the painting's blue; with it, it stays the photo's
    assert drift[None] > 0.01 and blueward[None] > 0.7 * drift[None], (drift, blueward)
    assert drift["histogram"] < 0.35 * drift[None], drift
    assert drift["luminance"] < 0.05 * drift[None], drift
    # ... while the luminance (the painting's strokes) changed too
    assert min(shift.values()) > 0.2 * shift[None] > 0.003, shift


def test_color_preserving_style_modes(red_photo, blue_style):
    photo = to_tensor(red_photo)
    hist = color_preserving_style(blue_style, photo, "histogram")
    assert hist.shape == blue_style.shape
    assert torch.allclose(hist[0].reshape(3, -1).mean(1), photo.reshape(3, -1).mean(1), atol=0.02)
    lum = color_preserving_style(blue_style, photo, "luminance")
    assert torch.equal(lum[:, 0], lum[:, 1]) and torch.equal(lum[:, 1], lum[:, 2])  # grey
    assert luminance(lum).mean().item() == pytest.approx(luminance(photo).mean().item(), abs=0.02)
    assert luminance(lum).std().item() == pytest.approx(luminance(photo).std().item(), rel=0.1)
    assert color_preserving_style(blue_style, photo, None) is blue_style
    with pytest.raises(ConfigError, match="preserve_color"):
        color_preserving_style(blue_style, photo, "sepia")


def test_pooled_color_stats_and_matching():
    torch.manual_seed(0)
    a, b = 0.25 + 0.5 * torch.rand(3, 10, 12), 0.2 + 0.3 * torch.rand(2, 3, 8, 8)  # no clamping below
    mean, cov = color_stats([a, b])
    pixels = torch.cat([a.reshape(3, -1), b.movedim(1, 0).reshape(3, -1)], dim=1).double()
    assert torch.allclose(mean[:, 0], pixels.mean(1), atol=1e-9)
    assert torch.allclose(cov, torch.cov(pixels, correction=0), atol=2e-5)
    out = match_color_stats(torch.rand(3, 30, 30) * BLUE, mean, cov)
    assert torch.allclose(out.reshape(3, -1).double().mean(1), mean[:, 0], atol=1e-3)
    g = grey(a)
    assert g.shape == a.shape and torch.allclose(g[0], luminance(a)[0])
    m = match_luminance(a, b[0])
    assert luminance(m).mean().item() == pytest.approx(luminance(b[0]).mean().item(), abs=1e-3)


@pytest.mark.slow
def test_training_style_is_recoloured_with_the_photos_colours(tmp_path, styles_dir):
    photos = make_photos(tmp_path / "photos")
    cfg = multi_config(tmp_path, photos, styles_dir, ["starry_night", "the_scream"], steps=2)
    plain = load_style_targets(cfg)
    cfg.style.preserve_color = "histogram"  # the run-wide setting reaches every style
    targets = load_style_targets(cfg)
    mean, cov = photo_color_stats(photos, seed=cfg.seed)
    for before, after in zip(plain, targets):
        pixels = after.image[0].reshape(3, -1).double()
        assert after.image.shape == before.image.shape
        assert torch.allclose(pixels.mean(1), mean[:, 0], atol=0.02)
        assert torch.allclose(torch.cov(pixels), cov, atol=0.01)
        assert not torch.allclose(before.image, after.image, atol=0.05)
    result = train(cfg, logger=NullLogger())  # the loop runs with the recoloured styles
    assert result.step == 2


def test_training_preserve_color_config(tmp_path, photos_train):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "style.preserve_color=histogram", f"data.root={photos_train}", "ckpt_out=x.pt", "run_name=x",
        ])
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(cfg, resolve=True)
    values.pop("styles_dir")
    config = train_config_from_dict(values)
    assert config.style.preserve_color == "histogram"
    config.validate()
    config.style = StyleConfig(preserve_color="luminance")
    with pytest.raises(ConfigError, match="preserve_color=luminance"):
        config.validate()


@pytest.mark.slow  # a script in a subprocess
def test_optimize_script_preserve_color(tmp_path, photos_val, style_image):
    out = tmp_path / "out.png"
    result = run_script(
        "optimize.py", f"input={sorted(photos_val.glob('*.jpg'))[0]}", f"style.image={style_image}", "style.size=64",
        "size=48", "max_iter=3", "preserve_color=luminance", f"output={out}", "device=cpu",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert max(Image.open(out).size) == 48
