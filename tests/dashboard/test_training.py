"""scripts/train.py against a real visdom server: what the trainer logs is what the server holds,
a server that dies mid-run never hurts the run, and a real run gives the README screenshot.

Training runs in subprocesses with OMP_NUM_THREADS=1: these nets are tiny, and on a 2-core machine
shared with other work, torch's spinning intra-op threads made the same run up to 10x slower.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fast_style.checkpoint import load_checkpoint
from fast_style.config import TrainerConfig
from fast_style.dashboard import free_port, start_server, stop_server
from tests.helpers import REPO, tiny_train_args

from .conftest import (
    legend_names,
    loaded_images,
    read_env,
    save_screenshot,
    severe_console_errors,
    traces,
    wait_for,
)

TERMS = ("content", "style", "tv", "total")
# The line fast_style/train.py writes at every log interval, e.g.
# "step 4  content 4873.2  style 10324  tv 28.756  total 15226  img/s 17.3" ("val step 3  ..." for val).
LOG_LINE = re.compile(
    r"\]\s(?P<val>val )?step (?P<step>\d+)  content (?P<content>\S+)  style (?P<style>\S+)  "
    r"tv (?P<tv>\S+)  total (?P<total>\S+)(?:  img/s (?P<ips>\S+))?$"
)


def parse_train_log(path: Path) -> tuple[dict[int, dict[str, float]], dict[int, dict[str, float]]]:
    """(train, val) as {step: {term: value}} from a run's train.log."""
    train: dict[int, dict[str, float]] = {}
    val: dict[int, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        match = LOG_LINE.search(line)
        if match:
            values = {term: float(match[term]) for term in TERMS}
            (val if match["val"] else train)[int(match["step"])] = values
    return train, val


def unique_env(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


UPDATE_DOCS = os.environ.get("FAST_STYLE_UPDATE_DOCS") == "1"


def train_cmd(*overrides: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / "train.py"), *overrides]


def train_env() -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def tiny_args(tmp_path: Path, photos: Path, style: Path, port: int, env: str, image_size: int = 32) -> list[str]:
    """tests/helpers.py's tiny_train_args, logging to visdom."""
    return [
        *tiny_train_args(photos, style),
        f"data.image_size={image_size}",
        "data.n_val=2",
        "logger=visdom",
        f"logger.port={port}",
        f"logger.env={env}",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"ckpt_out={tmp_path / 'final.pt'}",
    ]


@pytest.mark.slow  # a script in a subprocess
def test_training_run_lands_exactly_on_the_server(visdom_server, tmp_path, tiny_photos, style_image) -> None:
    env = unique_env("train")
    args = tiny_args(tmp_path, tiny_photos, style_image, visdom_server.port, env)
    result = subprocess.run(
        train_cmd(
            *args, "trainer.steps=6", "trainer.log_every=2", "trainer.sample_every=3",
            f"data.val_root={tiny_photos}", "trainer.val_every=3",
        ),
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=train_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "unreachable" not in result.stderr

    train_log, val_log = parse_train_log(tmp_path / "run" / "train.log")
    assert sorted(train_log) == [2, 4, 6] and sorted(val_log) == [3, 6], (tmp_path / "run" / "train.log").read_text()

    # The logger flushes on close (before the process exits), so everything is there already.
    state = read_env(visdom_server.port, env)
    assert {"losses", "lr", "images_per_s", "style", "samples"} <= set(state), sorted(state)
    lines = traces(state["losses"])
    for term in TERMS:
        assert lines[term]["x"] == [2, 4, 6], term
        # train.log holds 5 significant digits ("%.5g"); the server has the full float.
        expected = [train_log[step][term] for step in (2, 4, 6)]
        assert lines[term]["y"] == pytest.approx(expected, rel=1e-4), term
        assert lines[f"val {term}"]["x"] == [3, 6], term
        expected_val = [val_log[step][term] for step in (3, 6)]
        assert lines[f"val {term}"]["y"] == pytest.approx(expected_val, rel=1e-4), term
    assert lines["total (smoothed)"]["x"] == [2, 4, 6]
    assert traces(state["lr"])["lr"]["x"] == [2, 4, 6]
    assert traces(state["lr"])["lr"]["y"] == pytest.approx([TrainerConfig().lr] * 3)  # the default lr
    ips = traces(state["images_per_s"])["images_per_s"]
    assert ips["x"] == [2, 4, 6] and all(v > 0 for v in ips["y"])
    for image in ("style", "samples"):
        assert state[image]["type"] == "image"
        assert state[image]["content"]["src"].startswith("data:image/png;base64,")
    assert state["samples"]["content"]["caption"] == "step 6"


@pytest.mark.slow  # a script in a subprocess
def test_server_killed_mid_run_training_finishes_and_restart_gets_history(tmp_path, tiny_photos, style_image) -> None:
    """SIGKILL the server mid-run: one warning, exit 0, checkpoint; a restarted server gets every point."""
    port, env, steps = free_port(), unique_env("survive"), 600
    server = start_server(port=port, env_path=tmp_path / "env1", timeout=60)
    stderr_path = tmp_path / "train.err"
    args = tiny_args(tmp_path, tiny_photos, style_image, port, env, image_size=16)
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(
            train_cmd(*args, "style.size=32", "data.batch_size=1", f"trainer.steps={steps}", "trainer.log_every=1",
                      "trainer.sample_every=100000", "trainer.ckpt_every=100000"),
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=tmp_path, env=train_env(),
        )
    restarted = None
    try:

        def max_step() -> int:
            return max(traces(read_env(port, env, timeout=1.0)["losses"])["total"]["x"])

        assert wait_for(lambda: max_step() >= 5, timeout=60), "no points reached the server"
        before_kill = max_step()
        server.kill()  # SIGKILL: no goodbye, connections just die
        server.wait(5)
        assert wait_for(lambda: "unreachable" in stderr_path.read_text(), timeout=20), stderr_path.read_text()
        assert proc.poll() is None, "training ended before the outage could be tested; raise steps"

        # Bonus: a new server (fresh env_path, so nothing comes from disk) on the same port gets
        # the whole history resent, then new points appended, while training still runs.
        restarted = start_server(port=port, env_path=tmp_path / "env2", timeout=60)
        assert wait_for(lambda: max_step() > before_kill, timeout=30), "no points after the restart"
        early = traces(read_env(port, env)["losses"])["total"]["x"]
        assert early[:before_kill] == list(range(1, before_kill + 1)), "history before the outage was not resent"

        out, _ = proc.communicate(timeout=120)
        # The logger closed with the server up: the restarted server holds every step exactly once.
        final = traces(read_env(port, env)["losses"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_server(server)
        stop_server(restarted)

    err_text = stderr_path.read_text()
    assert proc.returncode == 0, err_text[-3000:]
    assert f"(step {steps})" in out
    dashboard_warnings = [line for line in err_text.splitlines() if "WARNING" in line and "visdom" in line]
    assert len(dashboard_warnings) == 1, dashboard_warnings
    assert err_text.count("unreachable") == 1
    assert load_checkpoint(tmp_path / "final.pt")["step"] == steps
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert "is back; dashboard history resent" in (tmp_path / "run" / "train.log").read_text()
    for term in TERMS:
        assert final[term]["x"] == list(range(1, steps + 1)), term


@pytest.mark.slow
@pytest.mark.browser
def test_real_training_run_renders_for_the_readme(
    visdom_server, browser, tmp_path, photos_train, photos_val, style_image
) -> None:
    """A real run (real photos, Caffe VGG19 ImageNet weights) shown in Chromium: docs/dashboard.png.

    In CI a short run: weights rebalanced (content 1e7, style 1e6) so that 120 steps at 64 px
    already show the photos' layout. With FAST_STYLE_UPDATE_DOCS=1 (refreshing docs/dashboard.png)
    it is the README's quick-start run instead (Johnson net, 128 px, 300 steps, the style's own
    weights; ~3 minutes on 2 cores), so the picture shows what users will see.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    env = unique_env("starry_night")
    if UPDATE_DOCS:
        run_args = [
            "data.image_size=128", "data.batch_size=4", "data.n_samples=4", "data.n_val=8",
            "trainer.steps=300", "trainer.log_every=5", "trainer.sample_every=100",
            "trainer.val_every=50",
        ]
    else:
        run_args = [
            "style.size=128", "data.image_size=64", "data.batch_size=2", "data.n_samples=3", "data.n_val=4",
            "model=small", "loss.content_weight=1e7", "loss.style_weight=1e6",
            "trainer.steps=120", "trainer.lr=1e-2", "trainer.log_every=2", "trainer.sample_every=40",
            "trainer.val_every=20",
        ]
    result = subprocess.run(
        train_cmd(
            f"style.image={style_image}", f"data.root={photos_train}", f"data.val_root={photos_val}",
            "data.workers=0", "loss_net=vgg19_caffe", "device=cpu", *run_args,
            "logger=visdom", f"logger.port={visdom_server.port}", f"logger.env={env}",
            f"hydra.run.dir={tmp_path / 'run'}", f"ckpt_out={tmp_path / 'final.pt'}",
        ),
        capture_output=True, text=True, timeout=1200 if UPDATE_DOCS else 180, cwd=tmp_path,
        env={**train_env(), "OMP_NUM_THREADS": "2"} if UPDATE_DOCS else train_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "unreachable" not in result.stderr
    state = read_env(visdom_server.port, env)
    assert {"losses", "lr", "images_per_s", "style", "samples"} <= set(state)

    browser.get(f"{visdom_server.url}/env/{env}")
    wanted = {*TERMS, "total (smoothed)", *(f"val {t}" for t in TERMS)}
    WebDriverWait(browser, 30).until(lambda d: wanted <= legend_names(d))
    WebDriverWait(browser, 15).until(
        lambda d: d.execute_script("return document.querySelectorAll('.js-plotly-plot').length") >= 3
        and loaded_images(d) >= 2
    )
    names = browser.execute_script("return document.body.innerText")
    for title in ("losses", "learning rate", "images/s", "style", "samples"):
        assert title in names, title
    time.sleep(1.0)  # let plotly finish its transitions before the screenshot
    save_screenshot(browser, "dashboard_training.png", update_docs=True)

    errors = severe_console_errors(browser)
    assert errors == [], "browser console errors:\n" + "\n".join(errors)
