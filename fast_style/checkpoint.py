"""Checkpoints: versioned, written atomically, loaded with ``weights_only=True``.

A checkpoint carries everything stylize needs (model config + weights + style name) and
everything resume needs (optimizer, step, RNG, resolved config). Only tensors and plain Python
containers go in, so loading never runs pickled code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from fast_style.errors import CheckpointError
from fast_style.fileio import atomic_write
from fast_style.models.transformer import ImageTransformNet, TransformerConfig

FORMAT = "fast-style-checkpoint"
VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write atomically (see :func:`fast_style.fileio.atomic_write`): a run killed at any instant
    leaves either the previous checkpoint or the new one, and a full disk leaves the previous one."""
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, **state}
    with atomic_write(path) as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate; every way a file can be wrong is one CheckpointError line."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass the .pt file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, random bytes, pickled code, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable fast-style checkpoint ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        hint = ""
        if isinstance(state, dict) and any(str(k).startswith(("conv1.", "in1.", "res1.")) for k in state):
            hint = " (it looks like a classic TransformerNet state_dict)"
        raise CheckpointError(f"{path}: not a fast-style checkpoint{hint}")
    version = state.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this fast-style supports "
            f"({VERSION}); upgrade fast-style"
        )
    for key in ("model_config", "model"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    return state


def model_from_checkpoint(state: dict[str, Any]) -> ImageTransformNet:
    """Rebuild the network from the config stored in the checkpoint (not from user flags)."""
    try:
        config = TransformerConfig(**state["model_config"])
        model = ImageTransformNet(config)
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint weights do not match its model config: {first}") from None
    return model.eval()
