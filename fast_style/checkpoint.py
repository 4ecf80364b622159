"""Checkpoints: versioned, written atomically, loaded with ``weights_only=True``.

A checkpoint carries everything stylize needs (model config + weights + style name) and
everything resume needs (optimizer, step, RNG, resolved config). Only tensors and plain Python
containers go in, so loading never runs pickled code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from fast_style.errors import CheckpointError
from fast_style.models.transformer import ImageTransformNet, TransformerConfig

FORMAT = "fast-style-checkpoint"
VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Atomic write: temp file in the same folder, fsync, rename, fsync the folder.

    A run killed at any instant leaves either the previous checkpoint or the new one, never a
    torn file; a full disk raises before the rename, so the previous file survives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is still atomic
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
