"""The user's entry points, run for real through hydra in subprocesses at tiny sizes.

Training here uses a seeded random-init VGG16 (loss_net.weights=random): these tests check the
CLI plumbing, not image quality.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from fast_style.checkpoint import load_checkpoint
from tests.helpers import REPO, SCRIPTS, script_env, tiny_train_args
from tests.helpers import run_script as run


@pytest.fixture(scope="module")
def trained(tmp_path_factory, style_image):
    """One tiny checkpoint trained through scripts/train.py, shared by the stylize tests."""
    tmp = tmp_path_factory.mktemp("trained")
    photos = tmp / "photos"
    photos.mkdir()
    for i in range(3):
        Image.effect_mandelbrot((40, 36), (-2, -1.5, 1, 1.5), 20 + i).convert("RGB").save(photos / f"m{i}.png")
    ckpt = tmp / "sn.pt"
    result = run(
        "train.py", *tiny_train_args(photos, style_image), "trainer.sample_every=2", f"ckpt_out={ckpt}",
        f"hydra.run.dir={tmp / 'run'}",
    )
    assert result.returncode == 0, result.stderr
    return tmp, ckpt, result


def test_train_cli_writes_checkpoint_log_and_samples(trained):
    tmp, ckpt, result = trained
    assert f"saved {ckpt} (step 3)" in result.stdout
    state = load_checkpoint(ckpt)
    assert state["step"] == 3 and state["config"]["trainer"]["steps"] == 3
    log = (tmp / "run" / "train.log").read_text()
    assert "step 3 " in log and "content" in log
    assert (tmp / "run" / ".hydra" / "config.yaml").is_file()
    assert sorted(p.name for p in (tmp / "run" / "samples").iterdir()) == ["step_000002.png", "step_000003.png"]


def test_stylize_a_file(trained, photos_val, tmp_path):
    _, ckpt, _ = trained
    photo = sorted(photos_val.iterdir())[0]
    out = tmp_path / "out.jpg"
    result = run("stylize.py", f"ckpt={ckpt}", f"input={photo}", f"output={out}", "scale=0.5")
    assert result.returncode == 0, result.stderr
    with Image.open(photo) as src, Image.open(out) as dst:
        assert dst.mode == "RGB" and dst.size == (round(src.width * 0.5), round(src.height * 0.5))


def test_stylize_a_folder_reports_bad_files_and_goes_on(trained, tmp_path):
    _, ckpt, _ = trained
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.new("RGBA", (20, 14), (10, 200, 30, 128)).save(src / "a.png")
    Image.new("L", (20, 14), 80).save(src / "sub" / "b.jpg")
    Image.new("P", (9, 11)).save(src / "c.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    result = run("stylize.py", f"ckpt={ckpt}", f"input={src}", f"output={out}")
    assert result.returncode == 1  # something failed, and the exit code says so
    assert "broken.jpg" in result.stderr and "1 of 4 image(s) failed" in result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["a_starry_night.png", "c_starry_night.png", "sub/b_starry_night.png"]
    with Image.open(out / "c_starry_night.png") as img:
        assert img.size == (9, 11) and img.mode == "RGB"


def test_stylize_default_output_name_and_no_overwrite(trained, tmp_path):
    _, ckpt, _ = trained
    photo = tmp_path / "photo.png"
    Image.new("RGB", (16, 12), (200, 10, 10)).save(photo)
    result = run("stylize.py", f"ckpt={ckpt}", f"input={photo}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "stylized" / "photo_starry_night.png").is_file()
    before = photo.read_bytes()
    result = run("stylize.py", f"ckpt={ckpt}", f"input={photo}", f"output={photo}")
    assert result.returncode == 2 and "overwriting the input" in result.stderr
    assert photo.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ckpt=/nonexistent.pt", "input=x.jpg"], "no such checkpoint"),
        (["input=x.jpg"], "ckpt= is required"),
        (["ckpt={ckpt}", "input=/nonexistent/photo.jpg"], "no such file or folder"),
        (["ckpt={photo}", "input={photo}"], "not a readable fast-style checkpoint"),
        (["ckpt={ckpt}", "input={photo}", "device=cuda:9"], "device"),
    ],
)
def test_stylize_user_errors_are_one_line(trained, photos_val, args, message):
    _, ckpt, _ = trained
    photo = sorted(photos_val.iterdir())[0]
    result = run("stylize.py", *[a.format(ckpt=ckpt, photo=photo) for a in args])
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_cfg_job_shows_the_resolved_style_settings():
    result = run("train.py", "style=the_scream", "--cfg", "job", "--resolve")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "name: the_scream" in out and "size: 256" in out and "style_weight: 1.0" in out
    assert "normalize: true" in out
    assert "ckpt_out: checkpoints/the_scream.pt" in out


def test_multirun_trains_one_checkpoint_per_style(tmp_path, tiny_photos, style_image):
    result = run(
        "train.py", "-m", "style=starry_night,candy", *tiny_train_args(tiny_photos, style_image, steps=1),
        f"ckpt_out={tmp_path}/${{style.name}}.pt", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(tmp_path / "starry_night.pt")["style"] == "starry_night"
    assert load_checkpoint(tmp_path / "candy.pt")["style"] == "candy"
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0-starry_night", "1-candy"]


def test_ctrl_c_saves_a_checkpoint_and_prints_the_resume_command(tmp_path, tiny_photos, style_image):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable, str(SCRIPTS / "train.py"),
            *tiny_train_args(tiny_photos, style_image, steps=100000),
            "trainer.sample_every=1000", f"ckpt_out={tmp_path}/final.pt", f"hydra.run.dir={run_dir}",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=script_env(),
    )
    log = run_dir / "train.log"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "step 2 " in log.read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "resume with:" in out and "resume=" in out
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["step"] >= 2
    assert f"stopped at step {state['step']}" in out
    assert not (tmp_path / "final.pt").exists()


def test_stylize_keeps_both_inputs_that_share_a_name(trained, tmp_path):
    _, ckpt, _ = trained
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (12, 12), (1, 2, 3)).save(src / "a.jpg")
    Image.new("RGB", (12, 12), (3, 2, 1)).save(src / "a.png")
    Image.new("RGB", (12, 12), (3, 2, 1)).save(src / "b.png")
    result = run("stylize.py", f"ckpt={ckpt}", f"input={src}", f"output={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_jpg_starry_night.png", "a_png_starry_night.png", "b_starry_night.png"
    ]


@pytest.mark.parametrize(
    "path", ["/data/runs/last.pt", "/tmp/rün dir/last.pt", "/x/it's [1],2/l.pt", "C:\\a\\b.pt", "a\\'b\\"]
)
def test_resume_command_values_read_back_unchanged_by_hydra(path):
    """The printed resume command's checkpoint survives hydra's override grammar (spaces, non-ASCII
    letters, quotes, brackets and commas used to be refused or split)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from train import hydra_quoted
    finally:
        sys.path.pop(0)
    override = OverridesParser.create().parse_override(f"resume={hydra_quoted(path)}")
    assert override.value() == path
