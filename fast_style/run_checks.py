"""The rules that keep a training from losing work: where it may write, which checkpoint it may
resume, and when its final checkpoint may replace the file already at ``ckpt_out``.

The loop calls them before its first step (a refused run costs seconds, not hours) and once more
before the final save (another run may have written ``ckpt_out`` meanwhile). What makes two
trainings "the same network" is :func:`fast_style.checkpoint.network_identity`; this module only
applies it to a run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fast_style.checkpoint import check_final_replacement, identity_differences, identity_of_state, network_identity
from fast_style.config import TrainConfig, train_config_to_dict
from fast_style.errors import CheckpointError, ConfigError
from fast_style.fileio import check_not_shipped


def run_identity(cfg: TrainConfig, label: str, model_config: dict[str, Any]) -> dict[str, Any]:
    """What makes two trainings the same network (checkpoint.network_identity) for this run."""
    return network_identity(train_config_to_dict(cfg), model_config, label, cfg.loss_net.name)


def check_writable(ckpt_out: Path, run_dir: Path) -> None:
    """Refuse a run whose work could not be saved, before its first step rather than after the
    last. Nothing is created here (a refused or stopped run leaves no empty folders): the nearest
    existing folder above each target must be a writable folder."""
    check_not_shipped(ckpt_out, "ckpt_out")
    if ckpt_out.is_dir():
        raise ConfigError(f"ckpt_out={ckpt_out} is a folder; give a file, e.g. ckpt_out={ckpt_out / 'style.pt'}")
    for what, folder in (("ckpt_out", ckpt_out.parent), ("the run folder", run_dir)):
        existing = folder.absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"{what}: cannot create {folder} ({existing} is not a folder)")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{what}: {existing} is not writable; nothing this run trains could be saved")


def check_final_checkpoint(cfg: TrainConfig, label: str, model_config: dict[str, Any], ckpt_out: Path, step: int,
                           saved_in: Path | None = None) -> None:
    """``ckpt_out`` may be replaced only by the same network at the same or a later step
    (checkpoint.check_final_replacement), unless ``overwrite=true``. Checked at setup with the
    run's last step, and again before the final save, since another run may have written there
    meanwhile; ``saved_in``: where this run's network is safe then, said in the refusal."""
    if cfg.overwrite:
        return
    try:
        check_final_replacement(ckpt_out, run_identity(cfg, label, model_config), step)
    except CheckpointError as e:
        if saved_in is None:
            raise
        raise CheckpointError(f"{e}; this run's network is in {saved_in}") from None


def check_outputs(cfg: TrainConfig, label: str, model_config: dict[str, Any], ckpt_out: Path, steps: int) -> None:
    """Before the first step: the run can write its files, and its final checkpoint will be
    allowed to replace what is at ``ckpt_out`` now."""
    check_writable(ckpt_out, Path(cfg.run_dir))
    check_final_checkpoint(cfg, label, model_config, ckpt_out, steps)


def check_resume_identity(cfg: TrainConfig, label: str, path: Path, state: dict[str, Any]) -> None:
    """Resuming another style or loss network would train on and save it under this run's name:
    the user meant another checkpoint. Starting from its weights is ``resume_check=false``."""
    diffs = identity_differences(
        identity_of_state(state), run_identity(cfg, label, state["model_config"]), keys=("style", "styles", "loss_net")
    )
    if diffs:
        raise CheckpointError(
            f"resume: {path} is another network than this run's ({'; '.join(diffs)}); resume the "
            "matching checkpoint, or pass resume_check=false to start from its weights anyway"
        )


def check_resumed_model(path: Path, state: dict[str, Any], model_config: dict[str, Any]) -> None:
    """The resumed weights must fit the network this run built (its model= settings), checked
    before loading so the error names both configs instead of a state_dict size mismatch."""
    if state["model_config"] != model_config:
        raise CheckpointError(
            f"resume: checkpoint model {state['model_config']} differs from model config {model_config}"
        )
