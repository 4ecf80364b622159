"""``python -m fast_style.dashboard install-assets``: run by the install script right after pip."""

from __future__ import annotations

import argparse
import sys
import time

from fast_style.dashboard.assets import ASSETS, assets_installed, install_assets, static_dir, visdom_version
from fast_style.dashboard.errors import DashboardError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fast_style.dashboard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install-assets", help="fetch visdom's JS/CSS/fonts from npm so the server starts offline")
    install.add_argument("--force", action="store_true", help="download again even if already installed")
    args = parser.parse_args(argv)

    try:
        if args.command == "install-assets":
            if not args.force and assets_installed():
                print(f"visdom {visdom_version()} web assets already installed in {static_dir()}")
                return 0
            start = time.perf_counter()
            where = install_assets(force=args.force)
            print(
                f"installed {len(ASSETS)} visdom {visdom_version()} web assets from npm into {where} "
                f"in {time.perf_counter() - start:.1f} s"
            )
    except DashboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
