"""Evaluate a checkpoint against Gatys optimisation:
``python scripts/evaluate.py ckpt=checkpoints/starry_night.pt photos=../shared/data/photos_val n=8``.
All logic lives in fast_style/evaluate.py.
"""

import time

import hydra
from omegaconf import DictConfig

from fast_style.cli import log_to_stderr, require, run_hydra_main, user_errors
from fast_style.evaluate import evaluate, format_table
from fast_style.script_configs import register_configs

register_configs()  # the options' dataclasses (defaults, types): fast_style/script_configs.py


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    log_to_stderr()
    with user_errors(cfg.verbose):
        require(cfg.ckpt, "ckpt", ", e.g. ckpt=checkpoints/starry_night.pt")
        require(cfg.photos, "photos", ": a folder of photos (or one photo)")
        out_dir = cfg.out_dir or f"eval/{time.strftime('%Y%m%d-%H%M%S')}"
        report = evaluate(
            cfg.ckpt, cfg.photos, out_dir, n=cfg.n, size=cfg.size, iters=list(cfg.iters),
            device=cfg.device, style_image=cfg.style_image, init=cfg.init, seed=cfg.seed,
        )
    print(format_table(report))
    match = report.settings["fast_style_matches_iteration"]
    reached = match if match is not None else f"> {max(cfg.iters)}"
    print(f"fast-style mean total loss is reached by L-BFGS (from {cfg.init}) at iteration: {reached}")
    for kind, path in report.files.items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    run_hydra_main(main)
