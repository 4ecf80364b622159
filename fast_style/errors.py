"""One exception family for user mistakes, so entry points can print one line instead of a traceback."""


class FastStyleError(Exception):
    """A problem the user can fix (bad path, bad config value, missing weights, ...).

    Entry points print ``error: <message>`` and exit with code 2; anything else is a bug and
    keeps its traceback.
    """


class ConfigError(FastStyleError):
    """A configuration value is out of range or inconsistent."""


class ImageError(FastStyleError):
    """An image file cannot be read or written."""


class CheckpointError(FastStyleError):
    """A file is not a usable fast-style checkpoint."""


class Interrupted(FastStyleError):
    """Ctrl-C (SIGINT) stopped a long command after keeping what was finished; the message says
    what was kept. Entry points exit with 130, the shell's code for SIGINT."""


class WeightsError(FastStyleError):
    """Loss-network weights cannot be found or loaded."""


def first_line(error: BaseException, limit: int | None = None, lines: int = 1) -> str:
    """The first ``lines`` lines of an exception's message joined by spaces (its class name when
    the message is empty), cut to ``limit`` characters.

    Library errors are one line for the user; third-party exceptions (PIL, torch, onnxruntime)
    often carry a page of detail after a useful first line, so that first line is what gets quoted.
    """
    text = str(error).strip()
    line = " ".join(text.splitlines()[:lines]) if text else type(error).__name__
    return line[:limit] if limit else line
