"""Stylizer's onnxruntime backend: the same images as eager torch for every option, a cache that
rebuilds anything stale or corrupt, and torch fallbacks that say why in one line.

Random-init tiny networks (tests/helpers.py): these check the mechanics (the export, the
graph inputs, the cache), not style."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_style.checkpoint import save_checkpoint
from fast_style.errors import ConfigError
from fast_style.measure import stylize_frames
from fast_style.models import TransformerConfig
from fast_style.onnx_backend import OnnxNet, cache_key
from fast_style.stylize import Stylizer, stylize_paths
from tests.helpers import perturbed, run_script

pytestmark = pytest.mark.slow  # ONNX exports and onnxruntime sessions, several per test


pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SINGLE = TransformerConfig(width=8, n_residual=1)
MULTI = TransformerConfig(width=8, n_residual=1, n_styles=3)


def assert_same_image(a: torch.Tensor, b: torch.Tensor, eight_bit: bool = False) -> None:
    """The issue's bar: within 1/255 on at least 99.9 % of the values; and fp32-close overall
    (``eight_bit``: outputs rounded to 8 bits, where fp32 noise may flip a rounding by one level)."""
    assert a.shape == b.shape
    diff = (a.float() - b.float()).abs()
    assert (diff <= 1 / 255 + 1e-6).float().mean() >= 0.999, diff.max()
    assert diff.max() < (1 / 255 + 1e-6 if eight_bit else 1e-3), diff.max()


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    model = perturbed(SINGLE)
    path = tmp_path_factory.mktemp("ck") / "single.pt"
    save_checkpoint({"model_config": model.config.to_dict(), "model": model.state_dict(), "style": "candy"}, path)
    return path


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> Path:
    model = perturbed(MULTI, seed=1)
    path = tmp_path_factory.mktemp("ck") / "multi.pt"
    state = {"model_config": model.config.to_dict(), "model": model.state_dict(), "style": "a+b+c",
             "styles": ["a", "b", "c"]}
    save_checkpoint(state, path)
    return path


def pair(ckpt: Path, **options) -> tuple[Stylizer, Stylizer]:
    ort = Stylizer.from_checkpoint(ckpt, device="cpu", backend="onnxruntime", **options)
    ref = Stylizer.from_checkpoint(ckpt, device="cpu", backend="torch", **options)
    assert ort.backend == "onnxruntime" and ref.backend == "torch"
    return ort, ref


def test_auto_is_onnxruntime_on_cpu_once_exported(single, tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_STYLE_ONNX_CACHE", str(tmp_path))
    cold = Stylizer.from_checkpoint(single, device="cpu")
    cold(torch.rand(1, 3, 64, 64))
    assert cold.backend == "torch" and not list(tmp_path.iterdir())  # a small cold job: no export
    assert Stylizer.from_checkpoint(single, device="cpu", backend="onnxruntime").backend == "onnxruntime"
    warm = Stylizer.from_checkpoint(single, device="cpu")
    warm(torch.rand(1, 3, 64, 64))
    assert warm.backend == "torch"  # a small job does not start onnxruntime, cached or not
    warm(torch.rand(1, 3, 720, 720))  # past machine.MEASURE_PIXELS: the cached export
    assert warm.backend == "onnxruntime"


@pytest.mark.parametrize("options", [
    {}, {"strength": 0.4}, {"preserve_color": "luminance"}, {"preserve_color": "histogram"},
    {"strength": 0.7, "preserve_color": "luminance"},
])
def test_single_style_options_match_torch(single, options):
    ort, ref = pair(single, **options)
    for shape in [(1, 3, 64, 64), (2, 3, 37, 50), (1, 3, 8, 9), (1, 3, 5, 3)]:  # padded, odd, smallest, tiny (torch)
        x = torch.rand(*shape)
        assert_same_image(ort(x), ref(x))
    photo = Image.fromarray((np.random.default_rng(0).random((30, 41, 3)) * 255).astype(np.uint8))
    assert np.abs(np.asarray(ort(photo), np.int16) - np.asarray(ref(photo), np.int16)).max() <= 1


@pytest.mark.parametrize("choice", [{"style": "b"}, {"style_mix": {"a": 0.6, "c": 0.4}},
                                    {"style_mix": {"a": 1, "b": 1, "c": 1}, "strength": 0.5}])
def test_multi_style_selection_and_mix_are_a_graph_input(multi, choice):
    ort, ref = pair(multi, **choice)
    x = torch.rand(2, 3, 40, 36)
    assert_same_image(ort(x), ref(x))
    # one export serves every style: the weights are an input, not baked into the graph
    other = Stylizer.from_checkpoint(multi, device="cpu", backend="onnxruntime", style="a")
    assert other.net.session.path == ort.net.session.path and not other.net.session.exported
    assert (other(x) - ort(x)).abs().max() > 1e-3


def test_tiles_run_on_torch_with_one_line_and_match(single, caplog):
    ort, ref = pair(single, tile_size=64)
    x = torch.rand(1, 3, 150, 90)
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        out = ort(x)
        ort(x)
    lines = [r.message for r in caplog.records if "tile_size=64" in r.message]
    assert len(lines) == 1 and "torch" in lines[0]
    assert_same_image(out, ref(x))
    small = torch.rand(1, 3, 40, 60)  # under tile_size: whole image through onnxruntime
    assert_same_image(ort(small), ref(small))


def test_folder_outputs_match_torch(single, tiny_photos, tmp_path):
    ort, ref = pair(single)
    a, errors_a = stylize_paths(ort, tiny_photos, tmp_path / "ort", progress=False)
    b, errors_b = stylize_paths(ref, tiny_photos, tmp_path / "torch", progress=False)
    assert not errors_a and not errors_b and len(a) == len(b) == 6
    for pa, pb in zip(a, b):  # 8-bit files: fp32 noise may flip a rounding, never by more than a level
        ia, ib = (np.asarray(Image.open(p), np.int16) for p in (pa, pb))
        assert ia.shape == ib.shape and np.abs(ia - ib).max() <= 1 and (ia != ib).mean() <= 0.01


def test_video_frames_match_and_smoothing_falls_back_with_one_line(multi, caplog):
    ort, ref = pair(multi, style="c")
    clip = torch.rand(6, 3, 24, 32)
    assert_same_image(stylize_frames(ort, clip), stylize_frames(ref, clip), eight_bit=True)
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        smoothed = stylize_frames(ort, clip, temporal_smoothing=0.8, batch_size=2)
    assert sum("temporal_smoothing runs on torch" in r.message for r in caplog.records) == 1
    assert_same_image(smoothed, stylize_frames(ref, clip, temporal_smoothing=0.8, batch_size=2), eight_bit=True)


def test_fallbacks_say_why_in_one_line(single, caplog, monkeypatch):
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        compiled = Stylizer.from_checkpoint(single, device="cpu", compile=True)
    assert compiled.backend == "torch"
    assert [r.message for r in caplog.records] == [
        "backend=auto: compile=true is torch.compile, so the network runs on torch"
    ]
    caplog.clear()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        plain = Stylizer.from_checkpoint(single, device="cpu", backend="onnxruntime")
    assert plain.backend == "torch" and len(caplog.records) == 1
    assert "onnxruntime is not installed" in caplog.records[0].message
    x = torch.rand(1, 3, 20, 20)
    assert_same_image(plain(x), Stylizer.from_checkpoint(single, device="cpu", backend="torch")(x))
    # torch chosen on purpose: no line
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert Stylizer.from_checkpoint(single, device="cpu", backend="torch").backend == "torch"
    assert not caplog.records
    with pytest.raises(ConfigError, match="backend='tensorrt': choose auto, torch, onnxruntime"):
        Stylizer.from_checkpoint(single, device="cpu", backend="tensorrt")


def test_export_failure_falls_back_to_torch(tmp_path, monkeypatch, caplog):
    import fast_style.export

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::foo\nmore detail")

    monkeypatch.setattr(fast_style.export, "onnx_bytes", broken)
    monkeypatch.setenv("FAST_STYLE_ONNX_CACHE", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        s = Stylizer(perturbed(SINGLE, seed=5), device="cpu", backend="onnxruntime")
    assert s.backend == "torch"
    assert [r.message for r in caplog.records] == [
        "backend=onnxruntime: ONNX export failed (unsupported operator aten::foo); the network runs on torch"]
    # backend=auto exporting mid-job (a profile where any job repays the export): the same one line
    from dataclasses import asdict

    from fast_style.machine import MachineProfile, profile_path

    key = profile_path().stem.removeprefix("machine-")
    profile_path().write_text(json.dumps(asdict(MachineProfile(key, 3.0, 1.0, 1e-9))))
    monkeypatch.setattr("fast_style.machine.MEASURE_PIXELS", 0)  # the 20x20 photos count as large
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        auto = Stylizer(perturbed(SINGLE, seed=5), device="cpu")
        for _ in range(2):
            auto(torch.rand(1, 3, 20, 20))
    assert auto.backend == "torch"
    assert [r.message for r in caplog.records] == [
        "backend=auto: ONNX export failed (unsupported operator aten::foo); the network runs on torch"]


def test_cache_is_keyed_by_content_and_rebuilds_corrupt_entries(tmp_path, caplog, monkeypatch):
    import fast_style.export
    from fast_style.onnx_backend import model_digest

    # the exporter runs for real once per network; rebuilds of the same network reuse its bytes
    # (an export costs ~10 s here), so what is tested is the cache's logic, every path of it
    real, memo = fast_style.export.onnx_bytes, {}

    def export_once(m, *args, **kwargs):
        if model_digest(m) not in memo:
            memo[model_digest(m)] = real(m, *args, **kwargs)
        return memo[model_digest(m)]

    monkeypatch.setattr(fast_style.export, "onnx_bytes", export_once)
    cache = tmp_path / "cache"
    model = perturbed(SINGLE, seed=7)
    first = OnnxNet(model, cache)
    assert first.exported and first.path.exists() and first.path.with_suffix(".json").exists()
    again = OnnxNet(model, cache)
    assert not again.exported and again.path == first.path  # cached: no second export

    changed = perturbed(SINGLE, seed=7)
    with torch.no_grad():
        changed.decoder[2][1].bias.add_(0.5)  # "retrained": one tensor differs
    assert cache_key(changed) != cache_key(model)
    fresh = OnnxNet(changed, cache)
    assert fresh.exported and fresh.path != first.path
    x = torch.rand(1, 3, 33, 29)
    assert_same_image(fresh(x), changed.stylize(x))

    # corrupt bytes (hash mismatch) -> rebuilt, with one line saying so
    data = bytearray(first.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="fast_style.onnx_backend"):
        rebuilt = OnnxNet(model, cache)
    assert rebuilt.exported and "hash does not match" in caplog.text
    assert_same_image(rebuilt(x), model.stylize(x))
    import hashlib

    record = json.loads(first.path.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(first.path.read_bytes()).hexdigest()

    # a file whose record matches but that onnxruntime refuses (a forged/foreign entry) -> rebuilt
    first.path.write_bytes(b"not an onnx model")
    first.path.with_suffix(".json").write_text(json.dumps({"sha256": hashlib.sha256(b"not an onnx model").hexdigest(),
                                                           "model": model_digest(model)}))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fast_style.onnx_backend"):
        reloaded = OnnxNet(model, cache)
    assert reloaded.exported and "onnxruntime cannot load it" in caplog.text
    assert_same_image(reloaded(x), model.stylize(x))

    # a missing record (crash between the two writes) -> rebuilt
    first.path.with_suffix(".json").unlink()
    assert OnnxNet(model, cache).exported


def test_export_is_one_self_contained_file(single, _onnx_cache):
    s = Stylizer.from_checkpoint(single, device="cpu", backend="onnxruntime")
    import onnx

    proto = onnx.load(str(s.net.session.path), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert [i.name for i in proto.graph.input] == ["image"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))  # dynamic N, H, W
    path = s.net.session.path
    assert {p.name for p in path.parent.iterdir()} >= {path.name, path.stem + ".json"}


def test_script_backend_option(single, tmp_path):
    photo = tmp_path / "p.png"
    Image.fromarray((np.random.default_rng(1).random((24, 30, 3)) * 255).astype(np.uint8)).save(photo)

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_script("stylize.py", f"ckpt={single}", f"input={photo}", *args, cwd=tmp_path, timeout=300)

    outs = {}
    for backend in ("onnxruntime", "torch"):
        r = run(f"backend={backend}", f"output={tmp_path / backend}.png")
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip() == str(tmp_path / f"{backend}.png")  # stdout: the written paths only
        outs[backend] = np.asarray(Image.open(tmp_path / f"{backend}.png"), np.int16)
    assert np.abs(outs["onnxruntime"] - outs["torch"]).max() <= 1
    bad = run("backend=tvm")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: backend='tvm': choose auto, torch, onnxruntime"]


def test_int8_is_a_quantised_graph_cached_apart_and_close_to_fp32(single, multi, caplog):
    """precision=int8: a static QDQ graph (really int8: QuantizeLinear nodes and int8 weights),
    its own cache entry next to the fp32 one, outputs close to fp32 (a tiny random network,
    so the bar is loose: it catches a broken calibration or a wrong input, not texture loss),
    and an option only onnxruntime serves: torch refuses it, fallbacks say they run fp32.
    How close int8 comes on a real network: the next test."""
    import onnx

    from fast_style.measure import psnr

    int8 = Stylizer.from_checkpoint(single, device="cpu", precision="int8")
    fp32 = Stylizer.from_checkpoint(single, device="cpu", backend="onnxruntime")
    assert int8.backend == fp32.backend == "onnxruntime"
    assert int8.net.session.path != fp32.net.session.path
    graph = onnx.load_from_string(int8.net.session.path.read_bytes()).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    assert json.loads(int8.net.session.path.with_suffix(".json").read_text())["precision"] == "int8"
    from fast_style.data import SAMPLE_PHOTOS
    from fast_style.images import load_image, resize_long_side, to_tensor

    photo = to_tensor(resize_long_side(load_image(SAMPLE_PHOTOS / "chelsea.jpg"), 64))
    x = torch.stack([photo, photo.flip(-2)])  # photos: what the ranges were calibrated for
    print(f"int8 vs fp32, tiny random network: {psnr(int8(x), fp32(x)):.1f} dB")
    assert psnr(int8(x), fp32(x)) > 15
    assert (int8(x) - fp32(x)).abs().max() > 0  # not the fp32 graph under another name

    mixed = Stylizer.from_checkpoint(multi, device="cpu", precision="int8", style_mix={"a": 0.5, "b": 0.5})
    ref = Stylizer.from_checkpoint(multi, device="cpu", style_mix={"a": 0.5, "b": 0.5})
    print(f"int8 vs fp32, tiny random multi-style mix: {psnr(mixed(x), ref(x)):.1f} dB")
    assert psnr(mixed(x), ref(x)) > 15

    with pytest.raises(ConfigError, match="precision=int8 is an onnxruntime option"):
        Stylizer.from_checkpoint(single, device="cpu", backend="torch", precision="int8")
    with pytest.raises(ConfigError, match="precision='fp16': choose fp32, int8"):
        Stylizer.from_checkpoint(single, device="cpu", precision="fp16")
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        compiled = Stylizer.from_checkpoint(single, device="cpu", precision="int8", compile=True)
    assert compiled.backend == "torch"
    assert [r.message for r in caplog.records if r.name == "fast_style.stylize"] == [
        "backend=auto: compile=true is torch.compile, so the network runs on torch, in fp32 (precision=int8 is "
        "onnxruntime's)"]


def test_int8_build_quantises_the_cached_fp32_export(tmp_path, monkeypatch, caplog):
    """An int8 build after an fp32 one reuses the verified fp32 entry (the export is most of a
    cold start), and still exports when there is none."""
    import fast_style.export

    monkeypatch.setenv("FAST_STYLE_ONNX_CACHE", str(tmp_path))
    model = perturbed(SINGLE, seed=11)
    assert Stylizer(model, device="cpu", backend="onnxruntime").backend == "onnxruntime"  # writes the fp32 entry
    exports = []
    real = fast_style.export.onnx_bytes
    monkeypatch.setattr(fast_style.export, "onnx_bytes", lambda *a, **k: exports.append(1) or real(*a, **k))
    with caplog.at_level(logging.INFO, logger="fast_style.onnx_backend"):
        int8 = Stylizer(model, device="cpu", precision="int8")
    assert int8.backend == "onnxruntime" and int8.net.session.exported and exports == []
    assert any("quantising the cached fp32 export" in r.message for r in caplog.records)
    fresh = Stylizer(perturbed(SINGLE, seed=12), device="cpu", precision="int8")  # no fp32 entry yet
    assert fresh.backend == "onnxruntime" and exports == [1]


def test_int8_on_the_shipped_network_stays_within_its_measured_cost():
    """The shipped starry_night network on an unseen photo: int8 within the ~24-26 dB of fp32 that
    docs/PERFORMANCE.md reports (a calibration or quantiser regression drops far below)."""
    from fast_style.data import SAMPLE_PHOTOS
    from fast_style.images import load_image, resize_long_side, to_tensor
    from fast_style.measure import psnr

    x = to_tensor(resize_long_side(load_image(SAMPLE_PHOTOS / "coffee.jpg"), 160)).unsqueeze(0)
    int8 = Stylizer.from_checkpoint("starry_night", device="cpu", precision="int8")
    fp32 = Stylizer.from_checkpoint("starry_night", device="cpu", backend="onnxruntime")
    assert int8.backend == fp32.backend == "onnxruntime"
    print(f"int8 vs fp32, shipped starry_night: {psnr(int8(x), fp32(x)):.1f} dB")
    assert psnr(int8(x), fp32(x)) > 23


def recording_exporter(monkeypatch, replace: dict | None = None) -> list[str]:
    """Stand in for fast_style.export.onnx_bytes: record each call's exporter; ``replace`` maps an
    exporter to what it does instead (a callable taking the same arguments)."""
    import fast_style.export

    real, calls = fast_style.export.onnx_bytes, []

    def export(model, *args, exporter="dynamo", **kwargs):
        calls.append(exporter)
        return (replace or {}).get(exporter, real)(model, *args, exporter=exporter, **kwargs)

    monkeypatch.setattr(fast_style.export, "onnx_bytes", export)
    return calls


# multi-style: the TorchScript exporter refuses the conditional norm after the fast upsample's
# reshape ("instance_norm for unknown channel size"), so torch.export's builds it (as before)
@pytest.mark.parametrize(("config", "exporters"), [(SINGLE, ["torchscript"]), (MULTI, ["torchscript", "dynamo"])],
                         ids=["single", "multi"])
def test_cache_export_takes_the_fast_exporter_and_checks_it(config, exporters, tmp_path, monkeypatch):
    """The cold start's export is the TorchScript exporter's (seconds, not ~15 s), its graph is
    checked against the network at other sizes than the traced one, and torch.export's is not run
    (the shipped networks are single-style)."""
    from fast_style.onnx_backend import CHECK_SHAPES, graph_mismatch

    calls = recording_exporter(monkeypatch)
    model = perturbed(config, seed=21)
    net = OnnxNet(model, tmp_path)
    assert net.exported and calls == exporters
    assert graph_mismatch(net.path.read_bytes(), model) is None
    weights = torch.tensor([[0.2, 0.5, 0.3]]) if config.n_styles > 1 else None
    for shape in [*CHECK_SHAPES, (1, 3, 61, 90)]:
        x = torch.rand(shape)
        w = None if weights is None else weights.expand(shape[0], 3)
        assert_same_image(net(x, w), model.stylize(x, w))


def test_fast_exporter_failing_or_disagreeing_falls_back_to_torch_export(tmp_path, monkeypatch, caplog):
    """A TorchScript graph that computes something else (a frozen shape, a wrong branch: here another
    network's graph) or an exporter that fails (gone from a newer torch) is never cached: the
    torch.export-based exporter builds the entry, with one info line saying why."""
    import fast_style.export

    model, other = perturbed(SINGLE, seed=22), perturbed(SINGLE, seed=23)
    wrong = fast_style.export.onnx_bytes(other, 18, clamp=True, exporter="torchscript")
    calls = recording_exporter(monkeypatch, {"torchscript": lambda *a, **k: wrong})
    with caplog.at_level(logging.INFO, logger="fast_style.onnx_backend"):
        net = OnnxNet(model, tmp_path / "a")
    assert calls == ["torchscript", "dynamo"]
    assert any("TorchScript exporter differs from the network" in r.message for r in caplog.records)
    x = torch.rand(1, 3, 33, 29)
    assert_same_image(net(x), model.stylize(x))

    def gone(*args, **kwargs):
        raise RuntimeError("dynamo=False is no longer supported")

    calls = recording_exporter(monkeypatch, {"torchscript": gone})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fast_style.onnx_backend"):
        net = OnnxNet(model, tmp_path / "b")
    assert calls == ["torchscript", "dynamo"] and net.exported
    assert any("TorchScript exporter failed (dynamo=False is no longer supported)" in r.message
               for r in caplog.records)
    assert_same_image(net(x), model.stylize(x))


def test_shipped_network_exports_through_the_fast_exporter(tmp_path, monkeypatch):
    """What a new user's first run exports: a shipped network, through the TorchScript exporter
    alone (its graph passing the check), in a few seconds rather than the ~15 s of torch.export's."""
    from fast_style.stylize import load_network

    calls = recording_exporter(monkeypatch)
    model, _, _ = load_network("starry_night")
    net = OnnxNet(model, tmp_path)
    assert net.exported and calls == ["torchscript"]
    x = torch.rand(1, 3, 45, 62)
    assert_same_image(net(x), model.stylize(x))


def test_cache_keeps_the_most_recently_used_entries_within_its_limit(tmp_path):
    """Entries of older versions and retrained networks are never read again: the least recently
    used go once the folder passes its limit; the entry just written, symlinks and other files stay."""
    import os

    from fast_style.onnx_backend import prune_cache

    for i in range(5):  # 5 entries of 100 bytes (+ a 10-byte record), used at t = 1000 + i
        (tmp_path / f"e{i}.onnx").write_bytes(b"x" * 100)
        (tmp_path / f"e{i}.json").write_bytes(b"y" * 10)
        for f in (tmp_path / f"e{i}.onnx", tmp_path / f"e{i}.json"):
            os.utime(f, (1000 + i, 1000 + i))
    (tmp_path / "notes.txt").write_text("the user's")
    (tmp_path / "link.onnx").symlink_to(tmp_path / "notes.txt")
    removed = prune_cache(tmp_path, keep={"e0.onnx"}, limit=330)  # 550 bytes: two entries must go
    assert sorted(p.name for p in removed) == ["e1.onnx", "e2.onnx"]  # oldest first, e0 kept as asked
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "e0.json", "e0.onnx", "e3.json", "e3.onnx", "e4.json", "e4.onnx", "link.onnx", "notes.txt"]
    assert prune_cache(tmp_path, limit=10**6) == []  # within the limit: nothing goes
