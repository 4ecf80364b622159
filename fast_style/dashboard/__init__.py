"""Live training dashboard: a visdom server that works offline, and a logger that never stalls training.

* :mod:`.assets` puts visdom's JavaScript/CSS/fonts in place from the npm registry, because
  ``python -m visdom.server`` otherwise fetches them from CDNs at start and crashes offline.
* :mod:`.server` starts/stops that server as a subprocess and waits until it answers.
* :mod:`.logger` is the visdom implementation of :class:`fast_style.loggers.Logger`, the interface
  the trainer talks to (``build_logger("visdom" | "none")``).
"""

from fast_style.dashboard.assets import assets_installed, install_assets, static_dir
from fast_style.dashboard.errors import DashboardError
from fast_style.dashboard.logger import VisdomLogger, build_logger
from fast_style.dashboard.server import free_port, start_server, stop_server, wait_until_up

__all__ = [
    "DashboardError",
    "VisdomLogger",
    "assets_installed",
    "build_logger",
    "free_port",
    "install_assets",
    "start_server",
    "static_dir",
    "stop_server",
    "wait_until_up",
]
