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


class WeightsError(FastStyleError):
    """Loss-network weights cannot be found or loaded."""
