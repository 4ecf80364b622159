"""Train a style network: ``python scripts/train.py style=starry_night data.root=/path/to/train2014``.

Multi-style: ``styles=[starry_night,the_scream]``; add a style to such a network:
``finetune=checkpoints/starry_night+the_scream.pt styles=[candy]``.

Several GPUs (or processes): ``torchrun --nproc_per_node=4 scripts/train.py ... data.batch_size=16``
(``data.batch_size`` is the global batch). Only rank 0 writes the run dir, log, samples and
checkpoints and prints; the other ranks run hydra with no output dir, no config copy and no log file.
"""

import os
import signal
import sys

if __name__ == "__main__":
    # Ctrl-C while the imports below load (a second or two) or before training starts: one line
    # and exit code 130, not a KeyboardInterrupt traceback. Installed before any heavy import;
    # train()'s own handler (finish the step, checkpoint) replaces it while the run trains.
    def _interrupted(signum: int, frame: object) -> None:
        print("interrupted before training started; nothing was saved", file=sys.stderr)
        raise SystemExit(130)

    signal.signal(signal.SIGINT, _interrupted)

import re
import shlex
import shutil
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import list_skipped, run_hydra_main, user_errors
from fast_style.config import named_style_configs, train_config_from_dict
from fast_style.distributed import launched_rank, launched_world_size
from fast_style.script_configs import register_configs
from fast_style.train import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SCRIPT = str(Path(__file__).resolve())


register_configs()  # the options' dataclasses (defaults): fast_style/config.py, fast_style/script_configs.py

# Ranks > 0 of a torchrun job write nothing: no run dir (their clock may name another one), no
# .hydra/ copy, no train.log (console warnings only). train() takes rank 0's run dir.
WORKER_OVERRIDES = [
    "hydra.run.dir=.",
    "hydra.output_subdir=null",
    "~hydra.job_logging.handlers.file",
    "hydra.job_logging.root.handlers=[console]",
]


def hydra_quoted(value: str) -> str:
    """``value`` as hydra's override grammar reads it back unchanged: plain when it only holds
    characters hydra takes unquoted, else in single quotes (paths with spaces, non-ASCII letters,
    brackets or commas would otherwise be refused or split)."""
    if re.fullmatch(r"[A-Za-z0-9_./:+~-]+", value):
        return value
    # inside quotes hydra unescapes only backslashes that precede a quote (or the closing one)
    escaped = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value).replace("'", "\\'")
    return f"'{escaped}'"


def resume_command(overrides: list[str], checkpoint: str) -> str:
    """The command line that continues this run (under torchrun when this is a torchrun job),
    runnable from any folder: the script by its absolute path, the checkpoint hydra-quoted."""
    args = [*overrides, f"resume={hydra_quoted(str(Path(checkpoint).resolve()))}"]
    if launched_world_size() > 1:
        local = os.environ.get("LOCAL_WORLD_SIZE", str(launched_world_size()))
        nodes = int(launched_world_size()) // max(int(local), 1)
        launcher = ["torchrun", f"--nproc_per_node={local}", *([f"--nnodes={nodes}"] if nodes > 1 else [])]
        return shlex.join([*launcher, SCRIPT, *args])
    return shlex.join([sys.executable, SCRIPT, *args])


# What hydra itself puts in a run folder before our code runs.
HYDRA_RUN_FILES = {".hydra", "train.log"}


def remove_unstarted_run_dir(run_dir: Path) -> None:
    """Remove the folder hydra made for a run that was refused (or interrupted) before its first
    step, so failed attempts leave no empty ``runs/<style>-<time>/`` behind. Only hydra's default,
    timestamped folder, and only while it holds nothing but hydra's own files: a folder the user
    named with ``hydra.run.dir=`` is theirs and stays."""
    if any(o.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in HydraConfig.get().overrides.hydra):
        return
    if not run_dir.is_dir() or not {p.name for p in run_dir.iterdir()} <= HYDRA_RUN_FILES:
        return
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    (run_dir / "train.log").unlink(missing_ok=True)
    try:
        run_dir.rmdir()
    except OSError:
        pass  # something appeared meanwhile: keep it


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    started = False

    def mark_started() -> None:
        nonlocal started
        started = True

    try:
        with user_errors(cfg.get("verbose", False)):
            values = OmegaConf.to_container(cfg, resolve=True)
            values["run_dir"] = str(run_dir)
            # multi-style: names -> each style's own configs/style/<name>.yaml (url, size, weights)
            values["styles"] = named_style_configs(values["styles"] or [], CONFIGS / "style", values.pop("styles_dir"))
            result = train(train_config_from_dict(values), on_start=mark_started)
    finally:
        if not started:
            remove_unstarted_run_dir(run_dir)
    if result.rank != 0:
        return  # rank 0 reports for the whole job
    if result.bad_files:
        print(f"skipped {len(result.bad_files)} unreadable training image(s):\n"
              f"{list_skipped(result.bad_files, 'train.log')}", file=sys.stderr)
    if result.rollbacks:
        print(f"recovered from a non-finite loss {result.rollbacks} time(s) by rolling back (see train.log)",
              file=sys.stderr)
    if result.interrupted:
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
        command = resume_command(overrides, str(result.checkpoint))
        print(f"stopped at step {result.step}; checkpoint {result.checkpoint}\nresume with:\n  {command}")
    else:
        print(f"saved {result.checkpoint} (step {result.step})")


if __name__ == "__main__":
    if launched_world_size() > 1 and launched_rank() > 0:
        sys.argv[1:] = [*sys.argv[1:], *WORKER_OVERRIDES]
    try:
        run_hydra_main(main)
    except KeyboardInterrupt:  # a second Ctrl-C while training: abort without the step's checkpoint
        print("aborted; the last checkpoint written is the one to resume from", file=sys.stderr)
        sys.exit(130)
