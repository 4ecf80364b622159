"""Export a checkpoint: ``python scripts/export.py ckpt=checkpoints/candy.pt format=onnx output=candy.onnx``."""

import hydra
from omegaconf import DictConfig

from fast_style.cli import user_errors
from fast_style.errors import ConfigError
from fast_style.export import export_checkpoint


@hydra.main(version_base="1.3", config_path="../configs", config_name="export")
def main(cfg: DictConfig) -> None:
    with user_errors(cfg.verbose):
        if not cfg.ckpt:
            raise ConfigError("ckpt= is required, e.g. ckpt=checkpoints/candy.pt")
        path = export_checkpoint(cfg.ckpt, cfg.format, cfg.output)
    print(path)


if __name__ == "__main__":
    main()
