"""trainer.amp=auto: bf16 autocast where the hardware runs bf16 natively, fp32 elsewhere; logged."""

import pytest
import torch

from fast_style import device as device_module
from fast_style.device import cpu_flags, decide_amp
from fast_style.errors import ConfigError
from fast_style.loggers import NullLogger
from fast_style.train import train
from tests.helpers import tiny_config

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16", "amx_tile"}, True), ({"avx2", "avx512f"}, False),
     (set(), False)],
)
def test_auto_takes_bf16_only_on_cpus_with_bf16_units(monkeypatch, flags, expected):
    monkeypatch.setattr(device_module, "cpu_flags", lambda: flags)
    on, reason = decide_amp("auto", CPU)
    assert on is expected
    assert reason.startswith("trainer.amp=auto: " + ("bf16" if expected else "fp32"))


def test_explicit_settings_win_and_bad_ones_are_refused(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_flags", lambda: set())
    assert decide_amp("bf16", CPU) == (True, "trainer.amp=bf16")
    assert decide_amp("none", CPU) == (False, "trainer.amp=none")
    with pytest.raises(ConfigError, match="choose auto, none or bf16"):
        decide_amp("fp8", CPU)


def test_cpu_flags_reads_this_machine():
    flags = cpu_flags()
    with open("/proc/cpuinfo") as f:
        line = next(ln for ln in f if ln.startswith("flags"))
    assert flags == set(line.split(":", 1)[1].split())
    assert "fpu" in flags or "sse2" in flags  # any x86 machine; a parse returning nothing would fail


def test_the_run_logs_and_uses_the_choice(tmp_path, tiny_photos, style_image, monkeypatch, caplog):
    monkeypatch.setattr(device_module, "cpu_flags", lambda: {"avx512_bf16"})
    seen = []
    real = torch.autocast

    def spy(*args, **kwargs):
        seen.append(kwargs.get("enabled", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    with caplog.at_level("INFO", logger="fast_style.train"):
        train(tiny_config(tmp_path, tiny_photos, 2, style_image, amp="auto"), logger=NullLogger())
    assert "trainer.amp=auto: bf16 autocast (the CPU has avx512_bf16)" in caplog.text
    assert seen and all(seen)  # every training forward ran under bf16 autocast
