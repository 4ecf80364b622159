"""trainer.compile=auto: compile only when the run repays the cold compile; the choice is logged."""

import pytest
import torch

from fast_style.compile_policy import COMPILE_COSTS, decide_compile
from fast_style.config import TrainConfig
from fast_style.errors import ConfigError

CPU = torch.device("cpu")


def test_short_runs_stay_eager_and_long_runs_compile_on_cpu():
    # a test-sized run (a few 32 px steps) and a quick 100-step try stay eager ...
    assert decide_compile("auto", CPU, 5, 2, 32)[0] is False
    assert decide_compile("auto", CPU, 100, 4, 256)[0] is False
    # ... a real training (thousands of 256 px steps) compiles
    on, reason = decide_compile("auto", CPU, 2000, 4, 256)
    assert on and reason.startswith("trainer.compile=auto: compiling (2000 steps")
    # the threshold follows the estimate: saved time >= 2x the compile
    c = COMPILE_COSTS["cpu"]
    step = c["seconds_per_pixel"] * 4 * 256**2
    threshold = 2 * c["compile_s"] / (step * (1 - 1 / c["speedup"]))
    assert decide_compile("auto", CPU, int(threshold) + 1, 4, 256)[0]
    assert not decide_compile("auto", CPU, int(threshold) - 1, 4, 256)[0]
    # bigger images or batches reach it in fewer steps; a resumed run counts the steps left
    assert decide_compile("auto", CPU, int(threshold) // 4 + 2, 4, 512)[0]
    assert not decide_compile("auto", CPU, 0, 4, 256)[0]


def test_explicit_settings_are_obeyed_and_bad_ones_refused():
    assert decide_compile(True, CPU, 1, 1, 8) == (True, "trainer.compile=true")
    assert decide_compile(False, CPU, 10**6, 16, 512) == (False, "trainer.compile=false")
    # bad settings are refused in one place, the config's validation, before any work
    cfg = TrainConfig()
    assert cfg.trainer.compile == "auto"
    cfg.trainer.compile = "yes"
    with pytest.raises(ConfigError, match="trainer.compile must be true, false or auto, got 'yes'"):
        cfg.validate()
    cfg.trainer.compile = 1
    with pytest.raises(ConfigError, match="trainer.compile"):
        cfg.validate()
