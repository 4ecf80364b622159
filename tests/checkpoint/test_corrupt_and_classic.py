"""Checkpoint loading failures and the conversion of classic pytorch/examples checkpoints.

Basic refusals (not a checkpoint, other model config, truncated, newer format version, pickled
code) are tested in tests/checkpoint/test_checkpoint.py; here: the same through the scripts, resume=auto
skipping a corrupt newest checkpoint, and classic-checkpoint conversion checked numerically
against our own re-implementation of the classic module layout.
"""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fast_style.checkpoint import convert_classic_state_dict, load_checkpoint, model_from_checkpoint, save_checkpoint
from fast_style.cli import user_errors
from fast_style.errors import CheckpointError
from fast_style.models import ImageTransformNet, TransformerConfig
from fast_style.stylize import Stylizer
from fast_style.train import train
from tests.helpers import good_photos, run_script, tiny_config

# ---- a classic TransformerNet, written from its description (names, 0-255 range) ----------

class ClassicConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, k, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv2d(self.pad(x))


class ClassicResidual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.in1 = ClassicConv(c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ClassicConv(c, c, 3), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class ClassicTransformerNet(nn.Module):
    """conv1..3 + in1..3, res1..N, deconv1..2 (upsample + conv) + in4..5, deconv3; 0-255 in and out."""

    def __init__(self, width: int = 32, n_residual: int = 5):
        super().__init__()
        w = width
        self.conv1, self.in1 = ClassicConv(3, w, 9), nn.InstanceNorm2d(w, affine=True)
        self.conv2, self.in2 = ClassicConv(w, 2 * w, 3, 2), nn.InstanceNorm2d(2 * w, affine=True)
        self.conv3, self.in3 = ClassicConv(2 * w, 4 * w, 3, 2), nn.InstanceNorm2d(4 * w, affine=True)
        for i in range(n_residual):
            setattr(self, f"res{i + 1}", ClassicResidual(4 * w))
        self.n_residual = n_residual
        self.deconv1, self.in4 = ClassicConv(4 * w, 2 * w, 3, upsample=True), nn.InstanceNorm2d(2 * w, affine=True)
        self.deconv2, self.in5 = ClassicConv(2 * w, w, 3, upsample=True), nn.InstanceNorm2d(w, affine=True)
        self.deconv3 = ClassicConv(w, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for i in range(self.n_residual):
            y = getattr(self, f"res{i + 1}")(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def classic_net(width: int = 32, n_residual: int = 5) -> ClassicTransformerNet:
    torch.manual_seed(0)
    net = ClassicTransformerNet(width, n_residual).eval()
    with torch.no_grad():
        for m in net.modules():  # non-trivial norm parameters, so a wrong mapping shows
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize(("width", "n_residual"), [(32, 5), (8, 2)])
def test_converted_classic_net_paints_the_same_picture(width, n_residual):
    classic = classic_net(width, n_residual)
    sd = classic.state_dict()
    assert "res1.in1.weight" in sd and "deconv3.conv2d.bias" in sd  # the classic names
    sd["in1.running_mean"] = torch.zeros(width)  # PyTorch < 0.4 files carry these; ignored
    state = convert_classic_state_dict(sd, style="udnie")
    assert state["model_config"] == {"width": width, "n_residual": n_residual, "n_styles": 1}
    assert state["style"] == "udnie"
    ours = model_from_checkpoint(state)
    x = torch.rand(2, 3, 36, 44)
    with torch.no_grad():
        expected = (classic(x * 255.0) / 255.0).clamp(0, 1)
    got = ours.stylize(x)
    assert torch.allclose(got, expected, atol=2e-4), (got - expected).abs().max()
    assert (expected * 255).round().eq((got * 255).round()).float().mean() > 0.999  # same 8-bit picture


@pytest.mark.slow  # a script in a subprocess
def test_convert_script_writes_a_checkpoint_stylize_can_use(tmp_path):
    old = tmp_path / "udnie.pth"
    torch.save(classic_net(8, 2).state_dict(), old)
    out = tmp_path / "checkpoints" / "udnie.pt"
    result = run_script("convert.py", f"input={old}", f"output={out}", "style=udnie")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    state = load_checkpoint(out)
    assert state["style"] == "udnie" and state["model_config"] == {"width": 8, "n_residual": 2, "n_styles": 1}
    # our own checkpoint is not a classic one, and a missing input is one line
    bad = run_script("convert.py", f"input={out}", f"output={tmp_path / 'x.pt'}")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
    bad = run_script("convert.py", f"input={tmp_path / 'nope.pth'}")
    assert bad.returncode == 2 and "no such file" in bad.stderr


@pytest.mark.slow  # a script in a subprocess
def test_stylize_refuses_unloadable_checkpoints_in_one_line(tmp_path, capsys):
    """The unit tests cover each refusal; here the script's exit code and one-line message."""
    photo = tmp_path / "p.png"
    good_photos(tmp_path / "ph", n=1)
    (tmp_path / "ph" / "good0.jpg").rename(photo.with_suffix(".jpg"))
    photo = photo.with_suffix(".jpg")
    model = ImageTransformNet(TransformerConfig(width=8, n_residual=1))
    cases = {}
    cases["text"] = tmp_path / "notes.pt"
    cases["text"].write_text("hello")
    cases["classic"] = tmp_path / "classic.pth"
    torch.save(classic_net(8, 1).state_dict(), cases["classic"])
    good = save_checkpoint({"model_config": {"width": 8, "n_residual": 1}, "model": model.state_dict()},
                           tmp_path / "good.pt")
    cases["truncated"] = tmp_path / "truncated.pt"
    cases["truncated"].write_bytes(good.read_bytes()[:300])
    cases["newer"] = tmp_path / "newer.pt"
    torch.save({"format": "fast-style-checkpoint", "version": 99, "model_config": {}, "model": {}}, cases["newer"])
    cases["other_config"] = tmp_path / "other.pt"
    save_checkpoint({"model_config": {"width": 16, "n_residual": 1}, "model": model.state_dict()},
                    cases["other_config"])
    expected = {"text": "not a readable", "classic": "classic TransformerNet", "truncated": "not a readable",
                "newer": "newer than", "other_config": "do not match"}
    for name, path in cases.items():  # in-process: the same code path as the script, minus startup
        with pytest.raises(SystemExit) as exit_info, user_errors():
            Stylizer.from_checkpoint(path, device="cpu")
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, (name, err)
        assert expected[name] in err, (name, err)
    result = run_script("stylize.py", f"ckpt={cases['truncated']}", f"input={photo}", f"output={tmp_path / 'o.png'}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not a readable" in result.stderr


@pytest.mark.slow
def test_resume_auto_skips_a_corrupt_newest_checkpoint(tmp_path, caplog):
    photos = good_photos(tmp_path / "photos")
    older = tiny_config(tmp_path, photos, steps=2)
    older.run_dir = str(tmp_path / "runs" / "starry_night-old")
    train(older)
    newer = tmp_path / "runs" / "starry_night-new" / "checkpoints" / "last.pt"
    newer.parent.mkdir(parents=True)
    newer.write_bytes((tmp_path / "runs" / "starry_night-old" / "checkpoints" / "last.pt").read_bytes()[:500])
    now = time.time()
    os.utime(newer, (now + 10, now + 10))  # newest by mtime, but torn
    cfg = tiny_config(tmp_path, photos, steps=3)
    cfg.run_dir = str(tmp_path / "runs" / "starry_night-3")
    cfg.resume = "auto"
    result = train(cfg)
    assert [s for s, _ in result.history] == [3]  # continued from the good step-2 checkpoint
    assert any("skipping" in r.getMessage() and "starry_night-new" in r.getMessage() for r in caplog.records)
    with pytest.raises(CheckpointError):
        load_checkpoint(newer)
