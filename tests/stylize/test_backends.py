"""The seam between the Stylizer and what runs its network (fast_style.backends): one backend,
chosen once when the Stylizer is built, options applied around it; the typed runtime choice; the
video's smoothed network as its own backend.

Fast: onnxruntime is replaced by a stand-in that runs the network in torch (the real sessions are
tests/stylize/test_onnx_backend.py's, marked slow)."""

from __future__ import annotations

import logging
import math
import sys

import pytest
import torch

from fast_style.backends import Backend, Bf16Net, CompiledNet, EagerNet, open_backend
from fast_style.color import preserve_luminance
from fast_style.machine import AutoNet
from fast_style.models import TransformerConfig
from fast_style.onnx_backend import BackendChoice, NotCached, OnnxRuntimeNet, Verdict, choose_runtime
from fast_style.stylize import Stylizer, normalized_weights
from fast_style.tiling import TiledNet
from fast_style.video import SmoothedNet, frame_stylizer, with_temporal_smoothing
from tests.helpers import perturbed

MULTI = TransformerConfig(width=8, n_residual=1, n_styles=3)
CPU = torch.device("cpu")


class FakeOnnxNet:
    """Stands in for OnnxNet: counts sessions started and batches served, computes in torch."""

    started = 0
    served = 0
    cached = False  # whether export=False finds an entry

    def __init__(self, model, precision="fp32", export=True):  # noqa: ANN001 - OnnxNet's signature
        if not export and not FakeOnnxNet.cached:
            raise NotCached("no entry")
        FakeOnnxNet.started += 1
        self.model = model

    def __call__(self, x, style_weights=None):  # noqa: ANN001, ANN204
        FakeOnnxNet.served += 1
        return self.model.stylize(x, style_weights)


@pytest.fixture
def fake_onnx(monkeypatch):
    FakeOnnxNet.started = FakeOnnxNet.served = 0
    FakeOnnxNet.cached = False
    monkeypatch.setattr("fast_style.onnx_backend.OnnxNet", FakeOnnxNet)
    return FakeOnnxNet


@pytest.mark.parametrize(("backend", "device", "compile", "expected"), [
    ("auto", "cpu", False, BackendChoice(Verdict.ONNXRUNTIME)),
    ("onnxruntime", "cpu", False, BackendChoice(Verdict.ONNXRUNTIME)),
    ("torch", "cpu", False, BackendChoice(Verdict.TORCH)),
    ("torch", "cuda", True, BackendChoice(Verdict.TORCH)),
    ("auto", "cuda", False, BackendChoice(Verdict.TORCH)),  # by design: no line
    ("onnxruntime", "cuda", False, BackendChoice(
        Verdict.FALLBACK, "the onnxruntime backend runs on the CPU; device=cuda uses torch")),
    ("auto", "cpu", True, BackendChoice(
        Verdict.FALLBACK, "compile=true is torch.compile, so the network runs on torch")),
])
def test_the_runtime_choice_is_typed(backend, device, compile, expected):
    choice = choose_runtime(backend, torch.device(device), compile)
    assert choice == expected
    assert bool(choice.why) == (choice.verdict is Verdict.FALLBACK)  # a reason exactly when it falls back
    assert choice.fallback("export failed") == BackendChoice(Verdict.FALLBACK, "export failed")


def test_backend_torch_never_touches_onnxruntime(monkeypatch, caplog):
    def no_onnx(*args, **kwargs):
        raise AssertionError("onnxruntime started for backend=torch")

    monkeypatch.setattr("fast_style.onnx_backend.OnnxNet", no_onnx)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import would fail loudly too
    with caplog.at_level(logging.WARNING):
        s = Stylizer(perturbed(), device="cpu", backend="torch")
        tiled = Stylizer(perturbed(), device="cpu", backend="torch", tile_size=64)
        compiled = Stylizer(perturbed(), device="cpu", backend="torch", compile=True)
        for size in ((20, 30), (5, 40), (70, 90)):
            s(torch.rand(1, 3, *size))
            tiled(torch.rand(1, 3, *size))
    assert type(s.net) is EagerNet and type(compiled.net) is CompiledNet and s.backend == "torch"
    assert type(tiled.net) is TiledNet and type(tiled.net.whole) is EagerNet and tiled.backend == "torch"
    assert not caplog.records  # torch on purpose: nothing to say


def test_the_backend_is_chosen_once(fake_onnx, caplog):
    model = perturbed(MULTI)
    weights = torch.tensor([0.2, 0.5, 0.3])
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        s = Stylizer(model, device="cpu", style_weights=weights, backend="onnxruntime")
        assert s.backend == "onnxruntime" and type(s.net) is OnnxRuntimeNet and fake_onnx.started == 1
        for size in ((20, 30), (33, 17), (20, 30)):
            s(torch.rand(2, 3, *size))
        tiny = torch.rand(1, 3, 5, 40)
        out_tiny = [s(tiny) for _ in range(2)]  # a side under 8: torch, said once
    assert fake_onnx.started == 1 and fake_onnx.served == 3
    assert [r.message for r in caplog.records] == [
        "images with a side under 8 px run on torch (the exported graph pads to 8 by reflection)"]
    torch.testing.assert_close(out_tiny[0], model.stylize(tiny, normalized_weights(weights)), atol=0, rtol=0)


def test_every_backend_is_a_backend(fake_onnx):
    model = perturbed()
    nets = [EagerNet(model), CompiledNet(model), SmoothedNet(model, 0.5), Bf16Net(model), open_backend(model, CPU),
            open_backend(model, CPU, backend="onnxruntime"),
            open_backend(model, CPU, backend="onnxruntime", tile_size=64)]
    assert all(isinstance(n, Backend) for n in nets)
    assert type(nets[4]) is AutoNet  # auto on a CPU, cold cache: torch until the work repays an export
    assert [n.name for n in nets] == ["torch", "torch", "torch", "torch", "torch", "onnxruntime", "onnxruntime"]


@pytest.mark.parametrize("config", [None, MULTI], ids=["one style", "three styles"])
def test_bf16_normalises_each_image_on_its_own(config):
    """Bf16Net's instance norm is a per-image batch norm: two very different images in one batch
    come out as each does alone, and close to fp32 (its statistics are fp32; the maps are bf16)."""
    model = perturbed(config) if config else perturbed()
    weights = normalized_weights(torch.tensor([0.6, 0.0, 0.4])) if config else None
    net = Bf16Net(model, weights)
    g = torch.Generator().manual_seed(4)
    dark, bright = torch.rand(1, 3, 48, 64, generator=g) * 0.6, 0.4 + torch.rand(1, 3, 48, 64, generator=g) * 0.6
    with torch.inference_mode():
        both = net(torch.cat([dark, bright]))
        alone = torch.cat([net(dark), net(bright)])
        fp32 = model.stylize(torch.cat([dark, bright]), weights)
    torch.testing.assert_close(both, alone, atol=0, rtol=0)
    assert both.dtype == torch.float32 and both.is_contiguous()
    mse = (both - fp32).pow(2).mean().item()
    # a perturbed random width-8 network (autocast's bf16 did no better on it); shipped networks: 58-64 dB
    assert 10 * math.log10(1 / mse) >= 30, mse
    assert next(model.parameters()).dtype == torch.float32  # the caller's network is left as it was


def test_tiled_and_whole_image_torch_agree(monkeypatch):
    import fast_style.tiling

    tiled_calls = []
    real = fast_style.tiling.stylize_tiled
    monkeypatch.setattr(fast_style.tiling, "stylize_tiled", lambda *a, **k: tiled_calls.append(1) or real(*a, **k))
    options = {"device": "cpu", "backend": "torch", "style_weights": torch.tensor([0.6, 0.0, 0.4]),
               "strength": 0.7, "preserve_color": "luminance"}
    whole = Stylizer(perturbed(MULTI), **options)
    tiled = Stylizer(perturbed(MULTI), tile_size=64, **options)
    x = torch.rand(2, 3, 100, 150, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(tiled(x), whole(x), atol=1e-5, rtol=0)
    assert tiled_calls == [1]
    small = x[..., :60, :60]  # under the tile size: one whole pass
    torch.testing.assert_close(tiled(small), whole(small), atol=0, rtol=0)
    assert tiled_calls == [1]


def test_tiles_leave_onnxruntime_with_one_line(fake_onnx, caplog):
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        s = Stylizer(perturbed(), device="cpu", tile_size=64, backend="onnxruntime")
        for _ in range(2):
            s(torch.rand(1, 3, 70, 90))
        s(torch.rand(1, 3, 40, 50))
    assert s.backend == "onnxruntime" and fake_onnx.served == 1
    assert [r.message for r in caplog.records] == [
        "tile_size=64: larger images run tiled on torch (the whole-image norm statistics are gathered layer "
        "by layer, outside the exported graph)"]


def old_smoothed_frames(model, clip, alpha, weights, strength, batch_size):  # noqa: ANN001, ANN201
    """What the video path computed before the redesign: the smoothed copy's stylize, then strength
    and luminance-preserving colour, batch by batch in time order."""
    smoothed = with_temporal_smoothing(model, alpha)
    out = []
    for start in range(0, len(clip), batch_size):
        x = clip[start : start + batch_size]
        y = torch.lerp(x, smoothed.stylize(x, weights), strength)
        out.append(preserve_luminance(y, x))
    return torch.cat(out)


def test_the_video_smoother_gives_the_same_frames_as_before():
    model = perturbed(MULTI)
    s = Stylizer(model, device="cpu", backend="torch", style_weights=torch.tensor([1.0, 2.0, 1.0]),
                 strength=0.6, preserve_color="luminance")
    clip = torch.rand(6, 3, 24, 32, generator=torch.Generator().manual_seed(4))
    expected = old_smoothed_frames(model, clip, 0.8, s.style_weights, 0.6, batch_size=4)
    for _ in range(2):  # each call is a fresh video: the EMA starts again
        frames = frame_stylizer(s, 0.8)
        with torch.inference_mode():
            got = torch.cat([frames.stylize_batch(clip[i : i + 4]) for i in (0, 4)])
        torch.testing.assert_close(got, expected, atol=0, rtol=0)
    assert type(frames.net) is SmoothedNet and type(s.net) is EagerNet  # the Stylizer itself is untouched
    assert frame_stylizer(s, 0.0) is s  # no smoothing: the Stylizer's own backend (compiled, onnxruntime, tiles)
    with pytest.raises(Exception, match=r"temporal_smoothing must be in \[0, 1\)"):
        frame_stylizer(s, 1.0)


def test_the_video_smoother_leaves_onnxruntime_with_one_line(fake_onnx, caplog):
    s = Stylizer(perturbed(), device="cpu", backend="onnxruntime")
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        for _ in range(2):
            frame_stylizer(s, 0.5).stylize_batch(torch.rand(2, 3, 16, 16))
    assert fake_onnx.served == 0 and s.backend == "onnxruntime"
    assert [r.message for r in caplog.records] == [
        "temporal_smoothing runs on torch (it carries norm statistics across frames, outside the exported graph)"]
