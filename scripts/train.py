"""Train a style network: ``python scripts/train.py style=starry_night data.root=/path/to/train2014``."""

import shlex
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import run_hydra_main, user_errors
from fast_style.config import train_config_from_dict
from fast_style.train import train


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    with user_errors(cfg.get("verbose", False)):
        values = OmegaConf.to_container(cfg, resolve=True)
        values["run_dir"] = HydraConfig.get().runtime.output_dir
        result = train(train_config_from_dict(values))
    if result.bad_files:
        shown = "\n".join(f"  {path}: {reason}" for path, reason in result.bad_files[:20])
        more = f"\n  ... and {len(result.bad_files) - 20} more (all listed in train.log)" if len(result.bad_files) > 20 else ""
        print(f"skipped {len(result.bad_files)} unreadable training image(s):\n{shown}{more}", file=sys.stderr)
    if result.rollbacks:
        print(f"recovered from a non-finite loss {result.rollbacks} time(s) by rolling back (see train.log)",
              file=sys.stderr)
    if result.interrupted:
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
        command = shlex.join([sys.executable, "scripts/train.py", *overrides, f"resume={result.checkpoint}"])
        print(f"stopped at step {result.step}; checkpoint {result.checkpoint}\nresume with:\n  {command}")
    else:
        print(f"saved {result.checkpoint} (step {result.step})")


if __name__ == "__main__":
    run_hydra_main(main)
