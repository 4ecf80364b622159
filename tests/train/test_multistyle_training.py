"""Multi-style training (conditional instance norm) and fine-tuning a new style into a network.

Tiny sizes (32 px crops, width 8, one residual block) with a seeded random-init VGG16
(loss_net.weights=random), like tests/train/test_train.py: these check the mechanics
(style per step, checkpoint contents, frozen parameters, CLI plumbing), not image quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.config import StyleConfig, TrainConfig
from fast_style.errors import ConfigError
from fast_style.loggers import NullLogger
from fast_style.models.transformer import ConditionalInstanceNorm2d
from fast_style.stylize import Stylizer
from fast_style.train import train
from tests.helpers import TINY_RUNS_IN_FP32, TINY_RUNS_STAY_EAGER, run_script

pytestmark = pytest.mark.slow  # every test trains (a module fixture trains a two-style network)


NAMES = ["starry_night", "the_scream"]


def make_photos(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        h, w = 36 + 4 * i, 44 - 2 * i
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200
        Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)).save(root / f"p{i}.png")
    return root


def multi_config(tmp: Path, photos: Path, styles_dir: Path, names: list[str], steps: int = 4) -> TrainConfig:
    cfg = TrainConfig()
    cfg.styles = [
        StyleConfig(name=n, image=str(styles_dir / f"{n}.jpg"), size=48, style_weight=10.0, tv_weight=0.0)
        for n in names
    ]
    cfg.model.width, cfg.model.n_residual = 8, 1
    cfg.data.root = cfg.data.val_root = str(photos)
    cfg.data.image_size, cfg.data.batch_size, cfg.data.workers = 32, 2, 0
    cfg.data.n_samples, cfg.data.n_val = 2, 2
    cfg.loss_net.weights = "random"
    cfg.device = "cpu"
    cfg.trainer.steps, cfg.trainer.lr = steps, 1e-2
    cfg.trainer.log_every = cfg.trainer.sample_every = cfg.trainer.val_every = cfg.trainer.ckpt_every = 2
    cfg.trainer.compile = False  # as tests/helpers.py's tiny runs (TINY_RUNS_STAY_EAGER)
    cfg.run_dir = str(tmp / "run")
    cfg.ckpt_out = str(tmp / "final.pt")
    return cfg


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return make_photos(tmp_path_factory.mktemp("photos") / "p")


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory, photos, styles_dir):
    tmp = tmp_path_factory.mktemp("multi")
    result = train(multi_config(tmp, photos, styles_dir, NAMES, steps=6), logger=NullLogger())
    return tmp, result


def test_two_style_network_is_trained_and_recorded(two_styles):
    tmp, result = two_styles
    state = load_checkpoint(result.checkpoint)
    assert state["styles"] == NAMES and state["style"] == "starry_night+the_scream"
    assert state["model_config"]["n_styles"] == 2 and state["step"] == 6
    assert [s for s, _ in result.val_history] == [2, 4, 6]
    grid = Image.open(tmp / "run" / "samples" / "step_000006.png")
    assert grid.height > 2.5 * 32  # photos + one row per style
    model = model_from_checkpoint(state)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(model(x, style=0), model(x, style=1), atol=1e-4)


def test_one_hot_style_mix_reproduces_the_single_style(two_styles):
    _, result = two_styles
    x = torch.rand(3, 32, 40)
    one = Stylizer.from_checkpoint(result.checkpoint, device="cpu", style="the_scream")(x)
    mix = Stylizer.from_checkpoint(result.checkpoint, device="cpu",
                                   style_mix={"starry_night": 0.0, "the_scream": 1.0})(x)
    other = Stylizer.from_checkpoint(result.checkpoint, device="cpu", style="starry_night")(x)
    assert torch.equal(one, mix) and not torch.allclose(one, other, atol=1e-4)


def test_resume_of_a_multi_style_run_is_exact(tmp_path, photos, styles_dir):
    full = train(multi_config(tmp_path / "a", photos, styles_dir, NAMES, steps=4), logger=NullLogger())
    half = train(multi_config(tmp_path / "b", photos, styles_dir, NAMES, steps=3), logger=NullLogger())
    cfg = multi_config(tmp_path / "b", photos, styles_dir, NAMES, steps=4)
    cfg.resume = str(half.checkpoint)
    resumed = train(cfg, logger=NullLogger())
    a, b = load_checkpoint(full.checkpoint)["model"], load_checkpoint(resumed.checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_finetune_trains_only_the_new_style_rows(two_styles, photos, styles_dir, tmp_path):
    _, base = two_styles
    cfg = multi_config(tmp_path, photos, styles_dir, ["candy"], steps=3)
    cfg.finetune = str(base.checkpoint)
    result = train(cfg, logger=NullLogger())
    before, after_state = load_checkpoint(base.checkpoint), load_checkpoint(result.checkpoint)
    assert after_state["styles"] == [*NAMES, "candy"] and after_state["model_config"]["n_styles"] == 3
    old, new = before["model"], after_state["model"]
    model = model_from_checkpoint(after_state)
    norm_keys = {
        f"{name}.{leaf}"
        for name, m in model.named_modules() if isinstance(m, ConditionalInstanceNorm2d) for leaf in ("weight", "bias")
    }
    assert norm_keys and set(old) == set(new)
    for key in old:
        if key in norm_keys:
            assert torch.equal(new[key][:2], old[key]), key  # the old styles' rows are untouched
            assert new[key].shape[0] == 3
        else:
            assert torch.equal(new[key], old[key]), key  # convs are frozen
    moved = [not torch.allclose(new[k][2], old[k].mean(0)) for k in norm_keys]  # the new row learned
    assert all(moved)
    x = torch.rand(3, 32, 32)
    for name in NAMES:  # the old styles stylize exactly as before
        a = Stylizer.from_checkpoint(base.checkpoint, device="cpu", style=name)(x)
        b = Stylizer.from_checkpoint(result.checkpoint, device="cpu", style=name)(x)
        assert torch.equal(a, b)


def test_finetune_refuses_a_style_it_already_holds(two_styles, photos, styles_dir, tmp_path):
    cfg = multi_config(tmp_path, photos, styles_dir, ["the_scream"], steps=1)
    cfg.finetune = str(two_styles[1].checkpoint)
    with pytest.raises(ConfigError, match="already holds"):
        train(cfg, logger=NullLogger())


def test_multistyle_cli_trains_and_stylizes_by_name(tmp_path, photos, styles_dir):
    ckpt = tmp_path / "multi.pt"
    args = [
        f"styles=[{','.join(NAMES)}]", f"styles_dir={styles_dir}", "style.size=48",
        f"data.root={photos}", "data.image_size=32", "data.batch_size=2", "data.workers=0", "data.n_samples=2",
        "model.width=8", "model.n_residual=1", "loss_net.weights=random", "trainer.steps=2", "trainer.log_every=1",
        "logger=none", "device=cpu", TINY_RUNS_STAY_EAGER, TINY_RUNS_IN_FP32,
        f"ckpt_out={ckpt}", f"hydra.run.dir={tmp_path / 'run'}",
    ]
    train_run = run_script("train.py", *args)
    assert train_run.returncode == 0, train_run.stderr
    assert load_checkpoint(ckpt)["styles"] == NAMES
    out = tmp_path / "out.png"
    stylize = run_script("stylize.py", f"ckpt={ckpt}", f"input={photos / 'p0.png'}", "style=the_scream",
                         f"output={out}", "device=cpu", timeout=120)
    assert stylize.returncode == 0, stylize.stderr
    assert Image.open(out).size == Image.open(photos / "p0.png").size
