"""backend=auto on a CPU (fast_style.machine: AutoNet and the machine profile): the machine is measured
once and its profile cached and re-used; a bad profile file is one line, never a crash; the rule
keeps a tiny cold job on torch and exports for a large one; the paths give the same images.

Fast: the measurement and onnxruntime are stand-ins (a stub profile, the torch network), except
the one test marked slow that exports for real."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict

import pytest
import torch

from fast_style import machine
from fast_style.backends import Bf16Net, EagerNet
from fast_style.machine import AutoNet, MachineProfile, fastest, machine_profile, profile_path, read_profile
from fast_style.onnx_backend import NotCached, OnnxRuntimeNet
from fast_style.stylize import Stylizer
from tests.helpers import perturbed

# 2-core AMD EPYC near idle, roughly: torch 3.6 s/MP, onnxruntime 1.0 s/MP, export 1.6 s
STUB = {"torch_fp32": 3.6, "onnxruntime_fp32": 1.0, "export": 1.6, "torch_bf16": None}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A temporary FAST_STYLE_CACHE (the profile and exports go to its onnx/ folder)."""
    monkeypatch.delenv("FAST_STYLE_ONNX_CACHE", raising=False)
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.fixture
def measured(monkeypatch):
    """measure_machine replaced by the STUB numbers; the list counts the measurements."""
    calls: list[str] = []

    def fake(key=None):  # noqa: ANN001, ANN202
        calls.append(key)
        return MachineProfile(key or machine.machine_key(), **STUB)

    monkeypatch.setattr(machine, "measure_machine", fake)
    return calls


class FakeOnnxNet:
    """Stands in for OnnxNet (torch computes); ``cached``: whether export=False finds an entry."""

    cached = False
    started: list[bool] = []

    def __init__(self, model, precision="fp32", export=True):  # noqa: ANN001 - OnnxNet's signature
        if not export and not FakeOnnxNet.cached:
            raise NotCached("none")
        FakeOnnxNet.started.append(export)
        FakeOnnxNet.cached = True
        self.model = model

    def __call__(self, x, style_weights=None):  # noqa: ANN001, ANN204
        return self.model.stylize(x, style_weights)


@pytest.fixture
def fake_onnx(monkeypatch):
    FakeOnnxNet.cached, FakeOnnxNet.started = False, []
    monkeypatch.setattr("fast_style.onnx_backend.OnnxNet", FakeOnnxNet)
    return FakeOnnxNet


def profile(**numbers: float | None) -> MachineProfile:
    return MachineProfile("k", **{**STUB, **numbers})


def test_the_rule_keeps_a_tiny_cold_job_on_torch_and_exports_for_a_large_one():
    p = profile()
    photo = 300 * 451  # chelsea.jpg, 0.14 MP: 0.49 s on torch < 1.6 s export + 0.14 s
    assert fastest(p, photo, cached=False) == "torch"
    assert fastest(p, photo, cached=True) == "onnxruntime"  # no export to repay
    assert fastest(p, 1024 * 1024, cached=False) == "onnxruntime"  # 3.8 s torch > 1.6 + 1.0 s
    assert fastest(p, 8 * 1024 * 1024, cached=False) == "onnxruntime"
    assert fastest(profile(onnxruntime_fp32=4.0), 1e9, cached=True) == "torch"  # a machine where it is slower
    assert fastest(profile(torch_bf16=0.8), photo, cached=False) == "bf16"  # measured fastest where it has units
    assert fastest(profile(torch_bf16=0.8), 1e9, cached=True) == "bf16"
    assert profile().seconds("bf16", 1e6) == math.inf  # not measured: never chosen


def test_the_profile_is_measured_once_and_reused(cache, measured, fake_onnx, monkeypatch, caplog):
    monkeypatch.setattr(machine, "MEASURE_PIXELS", 1000)
    big = torch.rand(1, 3, 40, 50)  # 2000 px: over the (lowered) measuring threshold
    with caplog.at_level(logging.INFO, logger="fast_style.onnx_backend"):
        first = Stylizer(perturbed(), device="cpu")
        first(big)
    assert len(measured) == 1 and profile_path().is_file()
    assert read_profile(profile_path())[0] == MachineProfile(measured[0], **STUB)
    assert sum("measured this machine once" in r.message for r in caplog.records) == 1
    second = Stylizer(perturbed(seed=5), device="cpu")
    for _ in range(3):
        second(big)
    assert len(measured) == 1  # the second Stylizer read the file
    assert machine_profile(measure=True) == read_profile(profile_path())[0] and len(measured) == 1


def test_a_small_cold_job_is_not_measured_and_runs_on_torch(cache, measured, fake_onnx, caplog):
    with caplog.at_level(logging.INFO, logger="fast_style"):
        s = Stylizer(perturbed(), device="cpu")
        for _ in range(3):
            s(torch.rand(1, 3, 30, 40))
    assert s.backend == "torch" and type(s.net) is AutoNet and s.net.current is s.net.torch
    assert measured == [] and fake_onnx.started == [] and not profile_path().exists()
    assert not caplog.records  # nothing to say: the first image is just torch


@pytest.mark.parametrize(("content", "why"), [
    (b"{not json", "unreadable"),
    (b'{"key": "k", "torch_fp32": 1}', "unreadable"),  # missing fields
    (b"[1, 2]", "unreadable"),
    ("foreign", "another machine"),
    ("negative", "not positive seconds"),
    ("folder", "unreadable"),
])
def test_a_bad_profile_is_one_line_then_measured_again(cache, measured, content, why, caplog):
    path = profile_path()
    path.parent.mkdir(parents=True)
    if content == "folder":
        path.mkdir()
    else:
        if content == "foreign":
            content = json.dumps(asdict(MachineProfile("0123456789abcdef", **STUB))).encode()
        elif content == "negative":
            content = json.dumps(asdict(MachineProfile(path.stem.removeprefix("machine-"),
                                                       **{**STUB, "export": -1.0}))).encode()
        path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="fast_style"):
        assert machine_profile(measure=False) is None
        got = machine_profile(measure=True)
    assert got is not None and got.torch_fp32 == STUB["torch_fp32"] and len(measured) == 1
    assert [why in r.message for r in caplog.records] == [True, True]  # one line per look
    assert all("\n" not in r.getMessage() for r in caplog.records)
    if content != "folder":
        assert read_profile(path)[0] == got  # replaced by the fresh measurement


def test_an_unwritable_cache_measures_for_this_run_only(tmp_path, monkeypatch, measured, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.delenv("FAST_STYLE_ONNX_CACHE", raising=False)
    monkeypatch.setenv("FAST_STYLE_CACHE", str(blocker / "cache"))
    with caplog.at_level(logging.INFO, logger="fast_style"):
        got = machine_profile(measure=True)
    assert got is not None and len(measured) == 1
    [line] = [r.getMessage() for r in caplog.records]
    assert "not cached: cannot write" in line and "measured again next time" in line


def test_a_failed_measurement_is_one_line_and_torch(cache, monkeypatch, fake_onnx, caplog):
    def broken(key=None):  # noqa: ANN001, ANN202
        raise RuntimeError("no exporter here\nsecond line")

    monkeypatch.setattr(machine, "measure_machine", broken)
    monkeypatch.setattr(machine, "MEASURE_PIXELS", 10)
    with caplog.at_level(logging.WARNING, logger="fast_style"):
        s = Stylizer(perturbed(), device="cpu")
        for _ in range(2):
            s(torch.rand(1, 3, 20, 20))
    assert s.backend == "torch" and fake_onnx.started == []
    assert [r.getMessage() for r in caplog.records] == [
        "machine profile: measuring failed (no exporter here); not measured"]


def write_profile(**numbers: float | None) -> None:
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = path.stem.removeprefix("machine-")
    path.write_text(json.dumps(asdict(MachineProfile(key, **{**STUB, **numbers}))))


def test_a_large_cold_batch_exports_first_and_a_folder_switches_once_repaid(cache, fake_onnx, caplog):
    write_profile()
    with caplog.at_level(logging.INFO, logger="fast_style.onnx_backend"):
        big = Stylizer(perturbed(), device="cpu")
        big(torch.rand(1, 3, 1024, 1024))  # repays the export alone: onnxruntime from the start
    assert big.backend == "onnxruntime" and fake_onnx.started == [True]
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("backend=auto: exporting this network for onnxruntime (once, cached): for 1.0 MP")

    fake_onnx.cached, fake_onnx.started = False, []
    small = Stylizer(perturbed(seed=3), device="cpu")
    backends = []
    for _ in range(10):  # 0.26 MP each: torch saves 0.68 s a photo, the export costs 1.6 s
        small(torch.rand(1, 3, 512, 512))
        backends.append(small.backend)
    assert backends == ["torch"] * 2 + ["onnxruntime"] * 8 and fake_onnx.started == [True]

    warm = Stylizer(perturbed(seed=3), device="cpu")  # its export is cached now
    warm(torch.rand(1, 3, 256, 256))  # a small job still runs on torch: nothing to start for it
    assert warm.backend == "torch" and fake_onnx.started == [True]
    warm(torch.rand(1, 3, 1024, 1024))  # past MEASURE_PIXELS: onnxruntime from the cache, no export
    assert warm.backend == "onnxruntime" and type(warm.net.current) is OnnxRuntimeNet
    assert fake_onnx.started == [True, False]


def test_where_onnxruntime_is_slower_auto_stays_on_torch(cache, fake_onnx, caplog):
    write_profile(onnxruntime_fp32=5.0)
    fake_onnx.cached = True  # even with an export cached
    with caplog.at_level(logging.INFO, logger="fast_style.onnx_backend"):
        s = Stylizer(perturbed(), device="cpu")
        s(torch.rand(1, 3, 1024, 1024))
    assert s.backend == "torch" and type(s.net.current) is EagerNet and fake_onnx.started == []
    assert [r.getMessage() for r in caplog.records] == [
        "backend=auto: torch is faster than onnxruntime on this machine (3.60 vs 5.00 s/MP, measured once)"]


def test_bf16_where_measured_fastest_stays_close_to_fp32(cache, fake_onnx, monkeypatch):
    write_profile(torch_bf16=0.5)
    model = perturbed()
    s = Stylizer(model, device="cpu")
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    s(x)
    assert type(s.net.current) is EagerNet  # a small job: plain torch, nothing converted
    monkeypatch.setattr(machine, "MEASURE_PIXELS", 0)  # the next batches count as a large job
    got = s(x)
    assert type(s.net.current) is Bf16Net and s.backend == "torch"
    ref = model.stylize(x)
    mse = (got - ref).pow(2).mean().item()
    assert 10 * math.log10(1 / max(mse, 1e-12)) >= 35  # a random width-8 network; the shipped ones: 53-63 dB
    assert next(model.parameters()).is_contiguous()  # the Stylizer's own network is left as it was


@pytest.mark.slow
def test_real_measurement_and_switch_give_the_torch_images(cache, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.setattr(machine, "MEASURE_SIDE", 32)
    p = machine_profile(measure=True)
    assert p is not None and p.key == machine.machine_key() and read_profile(profile_path())[0] == p
    assert all(r > 0 for r in (p.torch_fp32, p.onnxruntime_fp32, p.export))
    write_profile(export=1e-9)  # any job repays the export: auto moves to onnxruntime at once
    monkeypatch.setattr(machine, "MEASURE_PIXELS", 0)  # even this small one
    model = perturbed()
    s = Stylizer(model, device="cpu")
    ref = Stylizer(model, device="cpu", backend="torch")
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(2))
    got = s(x)
    assert s.backend == "onnxruntime"
    torch.testing.assert_close(got, ref(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("change", ["MEASURE_SIDE", "PATHS_REVISION"])
def test_a_profile_timed_at_another_size_or_of_older_paths_is_measured_again(cache, measured, monkeypatch, change):
    """The key holds the timed size (per-pixel costs depend on it: an earlier bf16 path led at 512²
    and trailed at 1024², docs/PERFORMANCE.md) and the paths' revision (a faster bf16 must be timed
    again), so such a profile is not reused."""
    first = machine_profile(measure=True)
    monkeypatch.setattr(machine, change, getattr(machine, change) // 2)
    assert machine.machine_key() != first.key and machine_profile(measure=False) is None
    assert machine_profile(measure=True).key == machine.machine_key() and len(measured) == 2
