"""Train a style network: ``python scripts/train.py style=starry_night data.root=/path/to/train2014``.

Multi-style: ``model=multistyle styles=[starry_night,the_scream]``; add a style to such a network:
``finetune=checkpoints/starry_night+the_scream.pt styles=[candy]``.
"""

import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import run_hydra_main, user_errors
from fast_style.config import named_style_configs, train_config_from_dict
from fast_style.train import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _style_label(name: str, styles: list) -> str:
    return "+".join(str(s) for s in styles) if styles else name


# ${style_label:${style.name},${styles}} in train.yaml: the run/checkpoint name
OmegaConf.register_new_resolver("style_label", _style_label, replace=True)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    with user_errors(cfg.get("verbose", False)):
        values = OmegaConf.to_container(cfg, resolve=True)
        values["run_dir"] = HydraConfig.get().runtime.output_dir
        # multi-style: names -> each style's own configs/style/<name>.yaml (url, size, weights)
        values["styles"] = named_style_configs(values["styles"] or [], CONFIGS / "style", values.pop("styles_dir"))
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
