"""The training loop, called as a library (fast; the CLI is covered in test_scripts.py).

These runs use a seeded random-init VGG16 (loss_net.weights=random) on tiny synthetic photos:
they check mechanics (resume, checkpoints, logging), not image quality (see test_learning.py).
"""

import pytest
import torch

from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.config import TrainConfig, train_config_from_dict
from fast_style.errors import CheckpointError, ConfigError
from fast_style.loggers import NullLogger
from fast_style.train import train
from tests import helpers


class RecordingLogger(NullLogger):
    def __init__(self):
        self.losses, self.scalars, self.images, self.closed = [], [], [], False

    def log_losses(self, step, losses, split="train"):
        self.losses.append((split, step, dict(losses)))

    def log_scalar(self, name, step, value):
        self.scalars.append((name, step, value))

    def log_image(self, name, image, caption=""):
        self.images.append((name, tuple(image.shape)))

    def close(self):
        self.closed = True


def tiny_config(tmp_path, photos, style, steps=4, **trainer) -> TrainConfig:
    """tests/helpers.py's tiny run with validation, samples and checkpoints every 2 steps."""
    cfg = helpers.tiny_config(
        tmp_path, photos, steps, style=style, **{"sample_every": 2, "val_every": 2, "ckpt_every": 2, **trainer}
    )
    cfg.data.val_root = str(photos)
    cfg.data.n_val = 3
    return cfg


def test_training_writes_everything_a_run_promises(tmp_path, tiny_photos, style_image):
    logger = RecordingLogger()
    result = train(tiny_config(tmp_path, tiny_photos, style_image, steps=4), logger=logger)
    assert result.step == 4 and not result.interrupted
    assert [s for s, _ in result.history] == [1, 2, 3, 4]
    for _, terms in result.history:
        assert terms["total"] == pytest.approx(terms["content"] + terms["style"] + terms["tv"], rel=1e-5)
    assert [s for s, _ in result.val_history] == [2, 4]
    assert [step for split, step, _ in logger.losses if split == "val"] == [2, 4]
    assert {name for name, *_ in logger.scalars} == {"lr", "images_per_s"}
    assert logger.images[0][0] == "style" and max(logger.images[0][1][1:]) == 48  # style.size = long side
    assert sum(n == "samples" for n, _ in logger.images) == 2 and logger.closed
    run = tmp_path / "runs" / "starry_night-1"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    state = load_checkpoint(result.checkpoint)
    assert state["step"] == 4 and state["style"] == "starry_night" and state["loss_net"] == "vgg16"
    assert state["config"]["data"]["image_size"] == 32 and "optimizer" in state
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4
    model_from_checkpoint(state)  # stylize can rebuild it from the checkpoint alone


@pytest.mark.slow
def test_losses_go_down_on_a_fixed_problem(tmp_path, tiny_photos, style_image):
    result = train(tiny_config(tmp_path, tiny_photos, style_image, steps=30, log_every=10), logger=NullLogger())
    first, last = result.history[0][1]["total"], result.history[-1][1]["total"]
    assert last < 0.5 * first


@pytest.mark.slow
def test_resume_continues_the_same_loss_sequence(tmp_path, tiny_photos, style_image):
    full = train(tiny_config(tmp_path / "a", tiny_photos, style_image, steps=6), logger=NullLogger())
    half = train(tiny_config(tmp_path / "b", tiny_photos, style_image, steps=3), logger=NullLogger())
    cfg = tiny_config(tmp_path / "b", tiny_photos, style_image, steps=6)
    cfg.resume = str(half.checkpoint)
    resumed = train(cfg, logger=NullLogger())
    assert [s for s, _ in resumed.history] == [4, 5, 6]
    assert resumed.history == full.history[3:]  # bit-for-bit on CPU: data order, Adam state, RNG
    a = load_checkpoint(full.checkpoint)["model"]
    b = load_checkpoint(resumed.checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_auto_picks_the_newest_checkpoint_of_the_style(tmp_path, tiny_photos, style_image):
    first = tiny_config(tmp_path, tiny_photos, style_image, steps=2)
    train(first, logger=NullLogger())
    cfg = tiny_config(tmp_path, tiny_photos, style_image, steps=3)
    cfg.run_dir = str(tmp_path / "runs" / "starry_night-2")
    cfg.resume = "auto"
    result = train(cfg, logger=NullLogger())
    assert [s for s, _ in result.history] == [3]
    cfg.style.name = "candy"
    with pytest.raises(ConfigError, match="no checkpoint of style 'candy'"):
        train(cfg, logger=NullLogger())


def test_resume_refuses_another_model_config(tmp_path, tiny_photos, style_image):
    half = train(tiny_config(tmp_path, tiny_photos, style_image, steps=1), logger=NullLogger())
    cfg = tiny_config(tmp_path, tiny_photos, style_image, steps=2)
    cfg.model.width = 16
    cfg.resume = str(half.checkpoint)
    cfg.ckpt_out = str(tmp_path / "wider.pt")  # not the first run's final file (that refusal is tested elsewhere)
    with pytest.raises(CheckpointError, match="differs"):
        train(cfg, logger=NullLogger())


def test_an_init_from_run_resumes_from_its_own_checkpoint(tmp_path, tiny_photos, style_image):
    """The printed resume command repeats init_from=: resuming must continue the run (its own
    weights and step), not start again from init_from's weights."""
    base = train(tiny_config(tmp_path / "a", tiny_photos, style_image, steps=2), logger=NullLogger())
    full_cfg = tiny_config(tmp_path / "b", tiny_photos, style_image, steps=4)
    full_cfg.init_from = str(base.checkpoint)
    full = train(full_cfg, logger=NullLogger())
    half_cfg = tiny_config(tmp_path / "c", tiny_photos, style_image, steps=2)
    half_cfg.init_from = str(base.checkpoint)
    half = train(half_cfg, logger=NullLogger())
    cfg = tiny_config(tmp_path / "c", tiny_photos, style_image, steps=4)
    cfg.init_from, cfg.resume = str(base.checkpoint), str(half.checkpoint)
    resumed = train(cfg, logger=NullLogger())
    assert [s for s, _ in resumed.history] == [3, 4]
    assert resumed.history == full.history[2:]


def _max_weight_difference(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_init_from_starts_a_new_run_from_a_networks_weights(tmp_path, tiny_photos, style_image):
    """init_from: step 0, the given weights (a shipped fp16 file too), not the seed's fresh ones."""
    from fast_style.checkpoint import pretrained_state, save_checkpoint

    first = load_checkpoint(train(tiny_config(tmp_path / "a", tiny_photos, style_image, steps=3),
                                  logger=NullLogger()).checkpoint)
    shipped = save_checkpoint(pretrained_state(first), tmp_path / "shipped.pt")  # fp16, no optimizer
    cfg = tiny_config(tmp_path / "b", tiny_photos, style_image, steps=1, lr=1e-12)  # a step that moves nothing
    cfg.init_from = str(shipped)
    result = train(cfg, logger=NullLogger())
    state = load_checkpoint(result.checkpoint)
    assert result.step == 1 and state["config"]["init_from"] == str(shipped)
    assert _max_weight_difference(state["model"], first["model"]) < 2e-3  # fp16 rounding only
    fresh = load_checkpoint(train(tiny_config(tmp_path / "c", tiny_photos, style_image, steps=1, lr=1e-12),
                                  logger=NullLogger()).checkpoint)
    assert _max_weight_difference(fresh["model"], first["model"]) > 1e-2


def test_init_from_refuses_another_architecture(tmp_path, tiny_photos, style_image):
    first = train(tiny_config(tmp_path / "a", tiny_photos, style_image, steps=1), logger=NullLogger())
    cfg = tiny_config(tmp_path / "b", tiny_photos, style_image, steps=1)
    cfg.init_from, cfg.model.width = str(first.checkpoint), 16
    with pytest.raises(ConfigError, match="is not this run's model"):
        train(cfg, logger=NullLogger())
    cfg = tiny_config(tmp_path / "d", tiny_photos, style_image, steps=1)
    cfg.init_from = "no_such_style"
    with pytest.raises(CheckpointError, match="no shipped network of that name"):
        train(cfg, logger=NullLogger())


@pytest.mark.parametrize(
    ("section", "key", "value", "match"),
    [
        ("data", "image_size", 30, "multiple of 4"),
        ("data", "batch_size", 0, "positive"),
        ("trainer", "lr", -1.0, "lr"),
        (None, "device", "cuda:7" if not torch.cuda.is_available() else "tpu", "device"),
        ("data", "root", "/nonexistent/coco", "train2014"),
    ],
)
def test_bad_config_values_fail_before_training(tmp_path, tiny_photos, style_image, section, key, value, match):
    cfg = tiny_config(tmp_path, tiny_photos, style_image)
    setattr(getattr(cfg, section) if section else cfg, key, value)
    with pytest.raises(ConfigError, match=match):
        train(cfg, logger=NullLogger())


def _totals(result):
    return torch.tensor([terms["total"] for _, terms in result.history])


@pytest.mark.slow
def test_compiled_training_follows_the_eager_loss_curve(tmp_path, tiny_photos, style_image):
    """trainer.compile must change the speed, not the maths: same seed, same losses (float noise)."""
    eager = train(tiny_config(tmp_path / "e", tiny_photos, style_image, steps=3), logger=NullLogger())
    compiled = train(tiny_config(tmp_path / "c", tiny_photos, style_image, steps=3, compile=True), logger=NullLogger())
    torch.testing.assert_close(_totals(compiled), _totals(eager), rtol=1e-3, atol=0)
    model_from_checkpoint(load_checkpoint(compiled.checkpoint))  # the compiled run saves plain weights


@pytest.mark.slow
def test_channels_last_and_bf16_training_track_fp32(tmp_path, tiny_photos, style_image):
    """channels_last changes only the conv summation order; bf16 autocast (Grams and instance-norm
    statistics in fp32) stays within a few percent of fp32 over a short run."""
    # lr 1e-3: the tests' usual 1e-2 makes these 8 steps chaotic, amplifying any rounding. The
    # classic raw-MSE loss, whose smooth tiny-run trajectory these tolerances were measured on
    # (the normalised one divides by per-batch statistics: bf16 moves single steps up to ~35 %
    # there with the same 0.7 % mean drift)
    def run(name: str, steps: int = 8, **trainer) -> torch.Tensor:
        cfg = tiny_config(tmp_path / name, tiny_photos, style_image, steps=steps, lr=1e-3, **trainer)
        cfg.loss.normalize, cfg.loss.content_weight, cfg.loss.style_weight = False, 1e5, 1e6
        return _totals(train(cfg, logger=NullLogger()))

    base = run("f")
    # channels_last, compared over the first 3 steps (no lr schedule: a 3-step run is the first 3
    # steps of the 8-step one). Measured on this run (2-core CPU, torch 2.14): on the same weights
    # and batch, channels_last's loss is within 7e-7 and its gradients within ~1e-6 of the
    # contiguous ones at every step (float64: 1e-15), so it computes the same function. But even
    # this smooth run amplifies rounding: steps 2 and 4 sit near kinks where the fp32 gradient is
    # only good to ~2e-4 whatever the memory format, and Adam scales every element to ~lr, so by
    # step 8 any rounding change is ~1 % away. The contiguous run with 1 thread instead of 2 (only
    # the summation order changes, no channels_last) is 0.46 % off at step 5 and 1.3 % at step 8,
    # as channels_last is. Over steps 1-3 all four variants (1 or 2 threads, either format) stayed
    # within 2.3e-5 of each other: rtol 1e-4 leaves 4x margin, and a layout bug is O(1) at step 1.
    cl = run("cl", steps=3, channels_last=True)
    torch.testing.assert_close(cl, base[:3], rtol=1e-4, atol=0)
    bf16 = run("b", amp="bf16")
    # per step, rounding reorders this tiny noisy problem's trajectory a little (up to ~11 %
    # here; ~3 % on real photos), the curve as a whole must match
    worst = ((bf16 - base).abs() / base).max().item()
    mean = ((bf16.mean() - base.mean()).abs() / base.mean()).item()
    assert worst < 0.25 and mean < 0.05, f"bf16 losses drift from fp32: worst step {worst:.1%}, mean {mean:.1%}"
    # and it learns: the output conv starts near black and steps at lr/255 (OUTPUT_SCALE), so in
    # 8 tiny steps the content term (most of this loss) falls ~5 %; a bf16 path that does not
    # train (lost gradients) stays within rounding of its first value
    assert bf16[-1] < 0.97 * bf16[0]
    assert not torch.equal(bf16, base)  # autocast really ran in bf16


@pytest.mark.parametrize(("key", "value", "match"), [("amp", "fp8", "amp"), ("compile", "yes", "compile")])
def test_bad_speed_options_fail_before_training(tmp_path, tiny_photos, style_image, key, value, match):
    with pytest.raises(ConfigError, match=match):
        train(tiny_config(tmp_path, tiny_photos, style_image, **{key: value}), logger=NullLogger())


@pytest.mark.parametrize("lr", [1e-2, 3e-3])
def test_trainer_lr_is_the_optimizers_lr_whatever_the_batch(tmp_path, tiny_photos, style_image, lr):
    """trainer.lr is the lr Adam uses, at any batch size (no hidden scaling for larger batches);
    read back from the logger and from the checkpoint's optimizer state."""
    logger = RecordingLogger()
    cfg = tiny_config(tmp_path, tiny_photos, style_image, steps=2, lr=lr)
    cfg.data.batch_size = 4
    result = train(cfg, logger=logger)
    assert [v for name, _, v in logger.scalars if name == "lr"] == pytest.approx([lr] * 2)
    groups = load_checkpoint(result.checkpoint)["optimizer"]["param_groups"]
    assert groups[0]["lr"] == pytest.approx(lr)


@pytest.mark.parametrize("value", [0.0, -1e-3])
def test_bad_lr_fails_before_training(tmp_path, tiny_photos, style_image, value):
    with pytest.raises(ConfigError, match="trainer.lr"):
        train(tiny_config(tmp_path, tiny_photos, style_image, lr=value), logger=NullLogger())


@pytest.mark.parametrize("key", ["lr_scaling", "lr_batch"])
def test_removed_lr_scaling_keys_are_unknown(key):
    """trainer.lr_scaling / trainer.lr_batch are gone: a config naming them is refused, not ignored."""
    with pytest.raises(ConfigError, match=f"unknown config key.*trainer.{key}"):
        train_config_from_dict({"trainer": {key: 4}})
