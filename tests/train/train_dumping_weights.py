"""``scripts/train.py`` for test_distributed.py, with each rank's final weights written to
``$FAST_STYLE_TEST_DUMP_WEIGHTS/rank<N>.pt``: only rank 0's weights reach the checkpoint, and the
test checks that the DDP replicas are identical. A test tool, so it wraps ``train.finish`` here
instead of living as a hook in the library."""

import os
import runpy
import sys
from pathlib import Path

import torch

import fast_style.train as train_module

DUMP_ENV = "FAST_STYLE_TEST_DUMP_WEIGHTS"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train.py"
_finish = train_module.finish


def finish_and_dump(run, state, result, stopped):
    result = _finish(run, state, result, stopped)
    torch.save(state.model.state_dict(), Path(os.environ[DUMP_ENV]) / f"rank{run.ctx.rank}.pt")
    return result


if __name__ == "__main__":
    train_module.finish = finish_and_dump
    sys.argv[0] = str(SCRIPT)
    runpy.run_path(str(SCRIPT), run_name="__main__")
