"""Multi-scale optimisation, intermediate images (save_every) and init=<checkpoint>.

vgg19_caffe (real weights, offline) at <= 64 px and a handful of iterations: the file runs in a
few seconds on 2 CPU cores (the script test dominates: one subprocess).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fast_style.checkpoint import save_checkpoint
from fast_style.images import load_image, resize_long_side, to_tensor
from fast_style.losses import LossConfig
from fast_style.models import ImageTransformNet, TransformerConfig, build_loss_net
from fast_style.optimize import (
    GATYS_CONTENT_LAYER,
    GATYS_STYLE_LAYERS,
    build_criterion,
    clamp01,
    initial_image,
    optimize_image,
    optimize_multiscale,
)
from fast_style.styles import load_style_tensor
from fast_style.stylize import Stylizer
from tests.helpers import run_script


@pytest.fixture(scope="module")
def criterion(style_image):
    net = build_loss_net("vgg19_caffe", "imagenet", ("relu1_1", "relu5_1"))
    cfg = LossConfig(content_weight=1e4, style_weight=6.5e6, tv_weight=1e2, normalize=False,
                     content_layer=GATYS_CONTENT_LAYER, style_layers=GATYS_STYLE_LAYERS)
    return build_criterion(net, load_style_tensor(style_image, 64), cfg)


@pytest.fixture(scope="module")
def photo(photos_val) -> Image.Image:
    return load_image(sorted(photos_val.glob("*.jpg"))[0])


def _tiny_checkpoint(path: Path, style_image: Path) -> Path:
    torch.manual_seed(0)
    model_config = TransformerConfig(width=8, n_residual=1)
    return save_checkpoint({
        "model_config": model_config.to_dict(),
        "model": ImageTransformNet(model_config).state_dict(),
        "style": "starry_night", "loss_net": "vgg19_caffe", "step": 0,
        "config": {"style": {"name": "starry_night", "image": str(style_image), "size": 64}},
    }, path)


def _final_loss_of(criterion, photo_tensor: torch.Tensor, image: torch.Tensor) -> float:
    with torch.no_grad():
        return criterion.terms(image, criterion.content_target(photo_tensor)).total.item()


# Measured (bsds_100007, starry_night, Gatys layers, vgg19_caffe), loss at 64 px:
#   init=content  [32, 64] x 10 it.: 3.18e6 at the start of 64 px -> 1.39e6;  [64] x 20 it.: 2.36e6 -> 1.27e6
#   init=noise    [32, 64] x 10 it.: 4.33e6 -> 1.54e6;                         [64] x 20 it.: 6.03e6 -> 1.35e6
# With the same iteration budget the single-scale run ends lower at these sizes: the coarse pass
# saves time (cheap iterations), not iterations. So the test asserts what holds: the output has
# the final size, the fine scale descends from the upsampled coarse result (which itself scores
# worse than the photo at 64 px), and it ends below the loss of the unchanged photo at that size.
@pytest.mark.slow
def test_multiscale_output_size_and_descent(criterion, photo) -> None:
    results = optimize_multiscale(criterion, photo, [64, 32], max_iter=10, progress=False)  # any order: coarse first
    assert len(results) == 2
    coarse, fine = results
    final_photo = to_tensor(resize_long_side(photo, 64)).unsqueeze(0)
    assert tuple(coarse.image.shape[-2:]) == tuple(to_tensor(resize_long_side(photo, 32)).shape[-2:])
    assert fine.image.shape == final_photo.shape
    assert fine.image.min() >= 0 and fine.image.max() <= 1
    # iterate 0 of the fine scale is the upsampled coarse result, measured at the final scale
    assert fine.history[-1]["total"] < fine.history[0]["total"]
    assert fine.history[-1]["total"] == pytest.approx(_final_loss_of(criterion, final_photo, fine.image), rel=1e-4)
    photo_loss = _final_loss_of(criterion, final_photo, final_photo)
    # (the upsampled coarse result itself scores worse than the photo at 64 px, 3.18e6 vs 2.36e6:
    # upsampling blurs away the detail the content layer measures; the fine pass restores it)
    assert fine.history[-1]["total"] < 0.7 * photo_loss


@pytest.mark.slow
def test_save_every_snapshots(criterion, photo) -> None:
    seen: list[tuple[int, int]] = []
    results = optimize_multiscale(
        criterion, photo, [24, 32], max_iter=5, save_every=2, progress=False,
        on_snapshot=lambda size, i, image: seen.append((size, i)),
    )
    assert seen == [(24, 2), (24, 4), (24, 5), (32, 2), (32, 4), (32, 5)]
    for res in results:
        assert sorted(res.snapshots) == [2, 4, 5]
        assert torch.equal(res.snapshots[5], res.image)
        assert len(res.history) == 6  # iterates 0..5


@pytest.mark.slow
def test_init_checkpoint_starts_from_its_stylization(tmp_path, criterion, photos_val, style_image) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt", style_image)
    content = to_tensor(resize_long_side(load_image(sorted(photos_val.glob("*.jpg"))[0]), 48)).unsqueeze(0)
    stylized = Stylizer.from_checkpoint(ckpt, device="cpu").stylize_batch(content)
    start = initial_image(str(ckpt), content, device="cpu")
    assert torch.equal(start, stylized)
    assert not torch.allclose(start, content, atol=1e-2)  # really the network's output, not the photo
    result = optimize_image(criterion, content, start, max_iter=3, progress=False)
    assert result.history[0]["total"] == pytest.approx(_final_loss_of(criterion, content, stylized), rel=1e-5)
    assert result.history[-1]["total"] < result.history[0]["total"]


@pytest.mark.slow  # a script in a subprocess
def test_script_multiscale_save_every_and_checkpoint_init(tmp_path, photos_val, style_image) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt", style_image)
    photo = sorted(photos_val.glob("*.jpg"))[0]
    out = tmp_path / "out" / "result.png"
    proc = run_script("optimize.py", f"input={photo}", f"output={out}", f"style.image={style_image}", "style.size=64",
                      "scales=[32,48]", "max_iter=4", "save_every=2", f"init={ckpt}", "device=cpu", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == ["result.png", "result_32px_iter0002.png", "result_48px_iter0002.png"], written
    assert max(Image.open(out).size) == 48
    assert max(Image.open(out.parent / "result_32px_iter0002.png").size) == 32


def test_clamp01_pulls_saturated_pixels_back() -> None:
    """Values as clamp(0, 1); the gradient reaches an out-of-range pixel only when descent moves it
    back inside (a plain clamp gives 0 there, and such pixels stayed saturated for good)."""
    x = torch.tensor([-0.5, 0.3, 1.5, -0.5, 1.5], requires_grad=True)
    y = clamp01(x)
    assert torch.equal(y, x.detach().clamp(0, 1))
    target = torch.tensor([0.2, 0.0, 0.8, -1.0, 2.0])  # last two: the loss wants them further out
    ((y - target) ** 2).sum().backward()
    grad = x.grad.tolist()
    assert grad[0] < 0 and grad[2] > 0  # descent (-grad) moves them inside
    assert grad[1] == pytest.approx(0.6)
    assert grad[3] == 0 and grad[4] == 0
