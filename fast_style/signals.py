"""Stopping a training cleanly on SIGINT/SIGTERM (Ctrl-C, a scheduler's kill): the loop only reads
:attr:`StopRequest.requested` after each step, so a stop never lands mid-step or mid-save."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from tqdm import tqdm


class StopRequest:
    """First SIGINT/SIGTERM: finish the current step, checkpoint, exit cleanly. Second: abort.

    Handlers are installed only from the main thread (Python allows no other), and the previous
    ones are restored on exit, so a library caller's own handlers survive a training."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write(
            f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint "
            "(press Ctrl-C again to abort without saving)",
            file=sys.stderr,
        )

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
