"""Stylize photos: ``python scripts/stylize.py ckpt=checkpoints/starry_night.pt input=photo.jpg``."""

import logging
import sys

import hydra
from omegaconf import DictConfig

from fast_style.cli import run_hydra_main, user_errors
from fast_style.errors import ConfigError
from fast_style.stylize import Stylizer, stylize_paths


@hydra.main(version_base="1.3", config_path="../configs", config_name="stylize")
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    with user_errors(cfg.verbose):
        if not cfg.ckpt:
            raise ConfigError("ckpt= is required, e.g. ckpt=checkpoints/starry_night.pt")
        if not cfg.input:
            raise ConfigError("input= is required: an image file or a folder of images")
        stylizer = Stylizer.from_checkpoint(cfg.ckpt, device=cfg.device)
        written, errors = stylize_paths(stylizer, cfg.input, cfg.output, scale=cfg.scale, batch_size=cfg.batch_size)
    for path in written:
        print(path)
    if errors:
        print(f"{len(errors)} of {len(errors) + len(written)} image(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_hydra_main(main)
