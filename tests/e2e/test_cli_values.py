"""Every command-line value goes through one validation (issue 14, findings 3 and 7): a bad value is
one ``error:`` line and exit code 2, with no hydra HYDRA_FULL_ERROR hint and no traceback; Ctrl-C
while train.py is still importing is one line too; each script's --help lists its own options only."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, run_script, script_env


def one_error_line(result: subprocess.CompletedProcess) -> bool:
    return (result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
            and "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr)


@pytest.mark.parametrize(
    ("script", "args", "key"),
    [
        ("stylize.py", ["ckpt=x.pt", "input=y.jpg", "scale=abc"], "scale"),
        ("stylize.py", ["ckpt=x.pt", "input=y.jpg", "strength=lots"], "strength"),
        ("stylize.py", ["ckpt=x.pt", "input=y.jpg", "tile_size=big"], "tile_size"),
        ("dashboard.py", ["port=abc"], "port"),
        ("export.py", ["ckpt=x.pt", "nonsense=1"], "nonsense"),
    ],
)
def test_bad_values_are_one_line(tmp_path, script, args, key):
    result = run_script(script, *args, cwd=tmp_path, timeout=120)
    assert one_error_line(result), result.stderr
    assert key in result.stderr


@pytest.mark.parametrize("delay", [0.4, 1.0])
def test_ctrl_c_during_train_imports_is_one_line(tmp_path, delay):
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), "logger=none"], cwd=tmp_path,
                            env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count("\n") == 1 and "interrupted" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_stylize_help_lists_only_its_own_options():
    result = run_script("stylize.py", "--help")
    assert result.returncode == 0
    assert "scale" in result.stdout and "tile_size" in result.stdout
    for group in ("loss_net", "trainer", "Configuration groups", "style: candy"):
        assert group not in result.stdout, group


@pytest.mark.parametrize("doc", ["README.md", "docs/FEATURES.md"])
def test_readme_config_keys_exist(doc):
    """Every dotted key in the training option tables (README's main options, FEATURES.md's full
    table) is a real key of the train config."""
    import dataclasses
    import re

    from fast_style.config import TrainConfig

    cfg = TrainConfig()
    table = (REPO / doc).read_text().split("| key | default | meaning |")[1].split("\n\n")[0]
    keys = [
        k
        for row in table.splitlines()
        if row.startswith("| `")
        for k in re.findall(r"`([a-z_]+(?:\.[a-z_]+)*)`", re.sub(r"\([^)]*\)", "", row.split("|")[1]))
    ]
    assert "trainer.ckpt_every" in keys
    for key in keys:
        node = cfg
        for part in key.split("."):
            fields = {f.name for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else set()
            assert part in fields or key in ("logger", "styles_dir"), key
            node = getattr(node, part, None)
