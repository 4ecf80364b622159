"""Helpers shared by the thin hydra entry points in scripts/."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from fast_style.errors import ConfigError, FastStyleError, Interrupted, first_line

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT
CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # the scripts' hydra config folder


@contextmanager
def user_errors(verbose: bool = False) -> Iterator[None]:
    """Turn a FastStyleError into ``error: <one line>`` and exit code 2 (traceback with verbose=true);
    :class:`~fast_style.errors.Interrupted` (Ctrl-C after keeping the finished work) exits 130."""
    try:
        yield
    except FastStyleError as e:
        if verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED if isinstance(e, Interrupted) else EXIT_USAGE)


def list_skipped(skipped: Sequence[tuple[object, str]], full_list: str, shown: int = 20) -> str:
    """The first ``shown`` unreadable files, one ``path: reason`` line each, and a count of the
    rest with where they are all listed (``full_list``: train.log, index.json): a summary a
    person reads, however many files a dataset of 80k photos lost."""
    lines = "\n".join(f"  {path}: {reason}" for path, reason in skipped[:shown])
    more = f"\n  ... and {len(skipped) - shown} more (all listed in {full_list})" if len(skipped) > shown else ""
    return lines + more


def log_to_stderr(level: int = logging.WARNING) -> None:
    """Library log records as ``LEVEL: message`` lines on stderr, from ``level`` up: what every
    script shows its user (warnings about skipped files, backend fall-backs)."""
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")


def require(value: object, key: str, hint: str) -> None:
    """A value the command cannot run without: ``<key>= is required<hint>`` when unset."""
    if not value:
        raise ConfigError(f"{key}= is required{hint}")


def hydra_error_line(error: BaseException, config_dir: Path = CONFIGS) -> str:
    """One line for an error hydra or OmegaConf raised while composing a config: the first line of
    its message and of its cause (OmegaConf's ``Key 'x' is not in struct``, ``Value 'abc' ... could
    not be converted to Float``), and for an unknown group choice (``style=nonexistent``) the
    presets in ``configs/<group>/``, listed by us (hydra's multi-line text is not parsed)."""
    parts = [first_line(error)]
    cause = error.__cause__
    if cause is not None and str(cause).strip() and first_line(cause) not in parts[0]:
        parts.append(first_line(cause))
    missing = getattr(error, "missing_cfg_file", None)  # hydra's MissingConfigException: "style/nonexistent"
    group = config_dir / Path(str(missing)).parent if missing else None
    if group is not None and group != config_dir and group.is_dir():
        presets = sorted(p.stem for p in group.glob("*.yaml"))
        parts.append(f"Available options in '{group.name}': {', '.join(presets)}")
    return "; ".join(part.rstrip(".") for part in parts if part)


def style_argument(argv: Sequence[str]) -> list[str]:
    """``style=<name>`` -> ``style_name=<name>`` for the scripts whose config has a plain
    ``style_name`` key (stylize, convert): ``style`` is a config group of train.py in the same
    configs/ folder, so hydra would read ``style=...`` as a group choice and refuse it."""
    return [f"style_name={a[len('style='):]}" if a.startswith("style=") else a for a in argv]


def _verbose_requested(argv: Sequence[str]) -> bool:
    return any(a.lower() in ("verbose=true", "+verbose=true", "verbose=1") for a in argv)


def run_hydra_main(main: Callable[[], None], argv: Sequence[str] | None = None) -> None:
    """Run a ``@hydra.main`` function so that hydra's own errors (``style=nonexistent``, an unknown
    key, a bad override) are one ``error:`` line with exit code 2, like our own config errors.

    Hydra prints these itself and exits 1 unless ``HYDRA_FULL_ERROR`` is set, in which case it
    re-raises them; we set it (when the user has not) and catch hydra's and OmegaConf's exception
    families only. Everything else (``--help``, ``--cfg``, ``-m``, exits from the task) is untouched,
    bugs keep their traceback, and ``verbose=true`` or a user-set ``HYDRA_FULL_ERROR`` shows the
    full traceback for config errors too.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    argv = sys.argv[1:] if argv is None else argv
    user_set = bool(os.environ.get("HYDRA_FULL_ERROR"))
    os.environ["HYDRA_FULL_ERROR"] = "1"
    if user_set or _verbose_requested(argv):
        main()  # hydra re-raises: the full traceback
        return
    try:
        main()
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: {hydra_error_line(e) or type(e).__name__}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
