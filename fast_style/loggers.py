"""What the training loop logs to: the :class:`Logger` interface and :class:`NullLogger`.

The interface belongs to the library, not to the visdom dashboard: training, benchmarks and
tests talk to a ``Logger`` without importing the HTTP client that implements it
(:class:`fast_style.dashboard.VisdomLogger`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only for the annotation: `python -m fast_style.dashboard` stays fast
    import torch

__all__ = ["Logger", "NullLogger"]


class Logger:
    """Interface the trainer talks to; this base class is also the do-nothing behaviour."""

    def log_losses(self, step: int, losses: dict[str, float], split: str = "train") -> None:
        """Loss terms at ``step`` (keys: content, style, tv, total); ``split`` is "train" or "val"."""

    def log_scalar(self, name: str, step: int, value: float) -> None:
        """One value of a named series, e.g. "lr" or "images_per_s"."""

    def log_image(self, name: str, image: torch.Tensor, caption: str = "") -> None:
        """A (3,H,W) float image in [0,1] shown in panel ``name`` (e.g. "style", "samples")."""

    def close(self) -> None:
        """Flush what can be flushed quickly and release resources."""

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullLogger(Logger):
    """Logging switched off (``logger=none``)."""
