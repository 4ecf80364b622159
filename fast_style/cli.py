"""Helpers shared by the thin hydra entry points in scripts/."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fast_style.errors import FastStyleError

EXIT_USAGE = 2


@contextmanager
def user_errors(verbose: bool = False) -> Iterator[None]:
    """Turn a FastStyleError into ``error: <one line>`` and exit code 2 (traceback with verbose=true)."""
    try:
        yield
    except FastStyleError as e:
        if verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
