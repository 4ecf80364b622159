"""Run the visdom dashboard until Ctrl-C: ``python scripts/dashboard.py [port=8097] [host=127.0.0.1]``.

Training runs started with ``logger=visdom`` then show up as envs (one per run name).
"""

from __future__ import annotations

import signal
import sys
import time

import hydra
from omegaconf import DictConfig

from fast_style.cli import run_hydra_main
from fast_style.dashboard import DashboardError, start_server, stop_server
from fast_style.dashboard.server import is_loopback, server_url
from fast_style.script_configs import register_configs

register_configs()  # the options' dataclasses (defaults, types): fast_style/script_configs.py


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@hydra.main(version_base="1.3", config_path="../configs", config_name="dashboard")
def main(cfg: DictConfig) -> None:
    # The server runs in its own session, so we must stop it ourselves on every way out: Ctrl-C
    # (re-armed because a shell that starts us in the background ignores SIGINT), kill, hang-up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        proc = start_server(
            host=str(cfg.host),
            port=int(cfg.port),
            env_path=str(cfg.env_path) if cfg.env_path else None,
            extra_args=[str(a) for a in cfg.get("extra_args") or ()],
        )
    except DashboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C while starting: start_server already stopped the child
        print("stopping visdom dashboard", flush=True)
        sys.exit(0)
    shown = "localhost" if is_loopback(str(cfg.host)) else str(cfg.host)  # loopback: visdom is on 127.0.0.1
    print(f"visdom dashboard: {server_url(shown, int(cfg.port))}  (log: {proc.log_path}; Ctrl-C to stop)",
          flush=True)
    code = 0
    try:
        while proc.poll() is None:
            time.sleep(0.2)
        print(f"error: visdom server exited with code {proc.returncode}; see {proc.log_path}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("stopping visdom dashboard", flush=True)
    finally:
        stop_server(proc)
    sys.exit(code)


if __name__ == "__main__":
    run_hydra_main(main)
