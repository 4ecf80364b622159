"""scripts/evaluate.py end to end in a subprocess, on a tiny checkpoint (random transformer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fast_style.checkpoint import save_checkpoint
from fast_style.models import ImageTransformNet, TransformerConfig
from tests.helpers import run_script


@pytest.mark.slow  # a script in a subprocess
def test_evaluate_script_end_to_end(tmp_path: Path, photos_val: Path, style_image: Path) -> None:
    torch.manual_seed(0)
    model_config = TransformerConfig(width=8, n_residual=1)
    ckpt = save_checkpoint({
        "model_config": model_config.to_dict(),
        "model": ImageTransformNet(model_config).state_dict(),
        "style": "starry_night", "loss_net": "vgg19_caffe", "step": 0,
        "config": {
            "style": {"name": "starry_night", "image": str(style_image), "size": 64},
            "loss_net": {"name": "vgg19_caffe", "weights": "imagenet"},
            "loss": {"content_weight": 1e5, "style_weight": 1e7, "tv_weight": 1e2},
        },
    }, tmp_path / "tiny.pt")
    out = tmp_path / "eval"
    proc = run_script("evaluate.py", f"ckpt={ckpt}", f"photos={photos_val}", "n=2", "size=48", "iters=[2,4]",
                      "init=content",
                      f"out_dir={out}", "device=cpu", timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fast-style" in proc.stdout and "gatys-4" in proc.stdout
    for name in ("losses.csv", "losses.json", "grid.png", "loss_vs_iter.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "losses.json").read_text())
    methods = {r["method"] for r in data["means"]}
    assert methods == {"photo", "fast-style", "gatys-2", "gatys-4"}
    assert len(data["rows"]) == 2 * 4
    assert data["settings"]["loss"]["style_layers"] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    gatys = {r["method"]: r["total"] for r in data["means"]}
    assert gatys["gatys-4"] <= gatys["gatys-2"] <= gatys["photo"]
    # the independent measure sits beside the loss: the photo is its reference point (1 and 0),
    # and L-BFGS, which moves towards the painting, scores below the photo
    measured = {r["method"]: r for r in data["means"]}
    assert measured["photo"]["style_score"] == pytest.approx(1.0, rel=1e-4)
    assert measured["photo"]["content_change"] == pytest.approx(0.0, abs=1e-6)
    assert measured["gatys-4"]["style_score"] < 1.0
    assert measured["gatys-4"]["content_change"] > 0
    assert "style score" in proc.stdout and data["settings"]["measure"]["content_layer"] == "relu4_2"


@pytest.mark.slow  # a script in a subprocess
def test_evaluate_script_reports_a_missing_checkpoint(tmp_path: Path) -> None:
    proc = run_script("evaluate.py", f"ckpt={tmp_path / 'nope.pt'}", f"photos={tmp_path}", timeout=120)
    assert proc.returncode == 2
    assert "no such checkpoint" in proc.stderr


def test_evaluate_starts_lbfgs_from_noise_or_from_the_photo(tmp_path: Path, photos_val: Path,
                                                           style_image: Path) -> None:
    """``init`` decides where Gatys starts: the photo's own loss at iterate 0 for ``content``, a
    far higher one for white noise (Gatys' and Johnson's baseline), and the report says which."""
    from fast_style.errors import ConfigError
    from fast_style.evaluate import evaluate

    torch.manual_seed(0)
    model_config = TransformerConfig(width=8, n_residual=1)
    ckpt = save_checkpoint({
        "model_config": model_config.to_dict(), "model": ImageTransformNet(model_config).state_dict(),
        "style": "starry_night", "loss_net": "vgg19_caffe", "step": 0,
        "config": {"style": {"name": "starry_night", "image": str(style_image), "size": 48},
                   "loss": {"normalize": True, "content_weight": 1.0, "style_weight": 0.5, "tv_weight": 0.0}},
    }, tmp_path / "tiny.pt")
    starts = {}
    for init in ("content", "noise"):
        report = evaluate(ckpt, photos_val, tmp_path / init, n=1, size=40, iters=[1], device="cpu",
                          progress=False, init=init)
        assert report.settings["gatys_init"] == init
        photo_total = next(r["total"] for r in report.means if r["method"] == "photo")
        starts[init] = (next(iter(report.curves.values()))[0], photo_total)
    assert starts["content"][0] == pytest.approx(starts["content"][1], rel=1e-4)
    assert starts["noise"][0] > 1.2 * starts["noise"][1]
    with pytest.raises(ConfigError, match="init='photo'"):
        evaluate(ckpt, photos_val, tmp_path / "bad", n=1, size=40, iters=[1], device="cpu", init="photo")
