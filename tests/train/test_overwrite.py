"""Nothing a user trained is replaced or mislabelled behind their back (issue 14, finding 1).

A final checkpoint (``ckpt_out``) is only replaced by the same network (same style, loss network,
model and loss config) trained at least as far, unless ``overwrite=true``; ``trainer.steps=0`` is
refused; ``resume`` refuses a checkpoint of another style or loss network unless
``resume_check=false``, and one already at or past ``trainer.steps``. Tiny random-init runs
(tests/helpers.py): they check the refusals, not image quality.
"""

from __future__ import annotations

import pytest
from PIL import Image

from fast_style.checkpoint import load_checkpoint
from fast_style.errors import CheckpointError, ConfigError
from fast_style.train import train
from tests.helpers import good_photos, run_script, tiny_config, tiny_train_args


def other_style(folder):
    """A second 'painting', different from helpers.style_file's."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "candy.png"
    Image.effect_mandelbrot((64, 48), (-1, -1, 0.5, 0.5), 80).convert("RGB").save(path)
    return path


@pytest.fixture
def finished(tmp_path):
    photos = good_photos(tmp_path / "photos")
    cfg = tiny_config(tmp_path, photos, steps=3)
    train(cfg)
    final = tmp_path / "final.pt"
    return tmp_path, photos, final, final.read_bytes()


def test_another_style_image_does_not_replace_a_final_checkpoint(finished):
    tmp_path, photos, final, before = finished
    cfg = tiny_config(tmp_path, photos, steps=3)
    cfg.run_dir = str(tmp_path / "runs" / "starry_night-2")
    cfg.style.image = str(other_style(tmp_path / "other"))  # style name unchanged: the case
    with pytest.raises(CheckpointError, match=r"overwrite=true") as info:
        train(cfg)
    assert str(final) in str(info.value) and "style" in str(info.value)
    assert final.read_bytes() == before
    cfg.overwrite = True
    train(cfg)
    assert load_checkpoint(final)["config"]["style"]["image"] == cfg.style.image


@pytest.mark.parametrize("change", ["loss_net", "model", "loss", "fewer_steps"])
def test_other_network_or_fewer_steps_is_refused(finished, change):
    tmp_path, photos, final, before = finished
    cfg = tiny_config(tmp_path, photos, steps=3)
    cfg.run_dir = str(tmp_path / "runs" / "starry_night-2")
    if change == "loss_net":
        cfg.loss_net.name = "vgg19"
        cfg.style.style_weight = {"vgg19": 1e6}
    elif change == "model":
        cfg.model.width = 4
    elif change == "loss":
        cfg.loss.tv_weight = 7.0
    else:
        cfg.trainer.steps = 2
    with pytest.raises(CheckpointError, match="overwrite=true"):
        train(cfg)
    assert final.read_bytes() == before


def test_the_same_network_trained_further_replaces_it(finished):
    tmp_path, photos, final, _ = finished
    cfg = tiny_config(tmp_path, photos, steps=5)
    cfg.run_dir = str(tmp_path / "runs" / "starry_night-2")
    train(cfg)
    assert load_checkpoint(final)["step"] == 5


def test_zero_steps_is_refused(tmp_path):
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"), steps=0)
    with pytest.raises(ConfigError, match="trainer.steps"):
        train(cfg)
    assert not (tmp_path / "final.pt").exists()


def test_resume_refuses_another_style_unless_told(finished):
    tmp_path, photos, final, _ = finished
    cfg = tiny_config(tmp_path, photos, steps=5)
    cfg.run_dir = str(tmp_path / "runs" / "candy-1")
    cfg.ckpt_out = str(tmp_path / "candy.pt")
    cfg.style.name = "candy"
    cfg.resume = str(final)
    with pytest.raises(CheckpointError, match=r"resume_check=false") as info:
        train(cfg)
    assert "starry_night" in str(info.value) and "candy" in str(info.value)
    cfg.style.name, cfg.style.image = "starry_night", str(other_style(tmp_path / "other"))
    with pytest.raises(CheckpointError, match="resume_check=false"):
        train(cfg)  # same name, another image
    cfg.resume_check = False
    assert train(cfg).step == 5


def test_resume_past_the_last_step_is_refused(finished):
    tmp_path, photos, final, before = finished
    cfg = tiny_config(tmp_path, photos, steps=2)
    cfg.run_dir = str(tmp_path / "runs" / "starry_night-2")
    cfg.resume = str(final)
    with pytest.raises(ConfigError, match=r"step 3.*trainer.steps=2"):
        train(cfg)
    assert final.read_bytes() == before


@pytest.mark.slow  # a script in a subprocess
def test_script_refuses_in_one_line_and_leaves_no_run_folder(finished):
    """Through scripts/train.py: the refusals cost no training and leave no runs/<style>-<time>/."""
    tmp_path, photos, final, before = finished
    (tmp_path / "runs").mkdir(exist_ok=True)
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    args = [*tiny_train_args(photos, other_style(tmp_path / "o"), steps=3), f"ckpt_out={final}"]
    again = run_script("train.py", *args, "data.batch_size=2", "trainer.ckpt_every=1", cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    assert again.stderr.startswith("error: ") and again.stderr.count("\n") == 1, again.stderr
    assert "overwrite=true" in again.stderr and "style.image" in again.stderr and final.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs  # no folder for a run that never started
    zero = run_script("train.py", *args, "trainer.steps=0", cwd=tmp_path)
    assert zero.returncode == 2 and "trainer.steps" in zero.stderr and final.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs
