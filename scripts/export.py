"""Export a checkpoint: ``python scripts/export.py ckpt=checkpoints/candy.pt format=onnx output=candy.onnx``."""

import hydra
from omegaconf import DictConfig

from fast_style.cli import require, run_hydra_main, user_errors
from fast_style.export import export_checkpoint
from fast_style.script_configs import register_configs

register_configs()  # the options' dataclasses (defaults, types): fast_style/script_configs.py


@hydra.main(version_base="1.3", config_path="../configs", config_name="export")
def main(cfg: DictConfig) -> None:
    with user_errors(cfg.verbose):
        require(cfg.ckpt, "ckpt", ", e.g. ckpt=checkpoints/candy.pt")
        path = export_checkpoint(cfg.ckpt, cfg.format, cfg.output, overwrite=cfg.overwrite)
    print(path)


if __name__ == "__main__":
    run_hydra_main(main)
