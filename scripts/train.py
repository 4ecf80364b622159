"""Train a style network: ``python scripts/train.py style=starry_night data.root=/path/to/train2014``."""

import shlex
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import user_errors
from fast_style.config import train_config_from_dict
from fast_style.train import train


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    with user_errors(cfg.get("verbose", False)):
        values = OmegaConf.to_container(cfg, resolve=True)
        values["run_dir"] = HydraConfig.get().runtime.output_dir
        result = train(train_config_from_dict(values))
    if result.interrupted:
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
        command = shlex.join([sys.executable, "scripts/train.py", *overrides, f"resume={result.checkpoint}"])
        print(f"stopped at step {result.step}; checkpoint {result.checkpoint}\nresume with:\n  {command}")
    else:
        print(f"saved {result.checkpoint} (step {result.step})")


if __name__ == "__main__":
    main()
