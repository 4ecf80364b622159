"""The dashboard's own exception, kept in a leaf module so every dashboard module can raise it."""

from fast_style.errors import FastStyleError


class DashboardError(FastStyleError):
    """A dashboard problem the user can fix (npm missing, port taken, server would not start).

    The message is a single line that says what failed and what to do about it, so entry points
    can print it without a traceback.
    """
