"""Value checks shared by the library's entry points, each written once so that the same mistake
gets the same one-line :class:`~fast_style.errors.ConfigError` wherever it is made."""

from __future__ import annotations

from fast_style.errors import ConfigError


def integer_at_least(name: str, value: object, minimum: int, extra: str = "") -> int:
    """``value`` if it is an integer >= ``minimum`` (``True`` is not an integer here, though Python
    says it is); else ``"<name> must be an integer >= <minimum><extra>, got <value>"``. ``extra``
    says what else is accepted or what the number means, e.g. ``" or auto"``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}{extra}, got {value!r}")
    return value


def check_batch_split(batch_size: int, world_size: int) -> None:
    """``data.batch_size`` is the global batch of a torchrun job: each of the ``world_size``
    processes takes ``batch_size / world_size`` of it, so it must divide evenly."""
    if batch_size % world_size:
        raise ConfigError(
            f"data.batch_size={batch_size} is the global batch and must be divisible by the number of "
            f"processes ({world_size}); each process takes batch_size / {world_size}"
        )


BACKENDS = ("auto", "torch", "onnxruntime")
PRECISIONS = ("fp32", "int8")
MIN_TILE = 64  # smaller tiles are all halo: the 9x9 convs alone need 4 px on each side


def check_precision(precision: object) -> str:
    """``fp32`` or ``int8``; else one ConfigError line."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: choose {', '.join(PRECISIONS)}")
    return str(precision)


def check_backend(backend: object) -> str:
    """``auto``, ``torch`` or ``onnxruntime``; else one ConfigError line."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}: choose {', '.join(BACKENDS)}")
    return str(backend)


def goes_tiled(tile_size: int | None, width: int, height: int) -> bool:
    """Whether an image of this size goes through tiles: a side over ``tile_size`` (a sliver
    under 8 px wide keeps one pass)."""
    return tile_size is not None and max(width, height) > tile_size and min(width, height) >= 8
