"""Gatys et al. optimisation: ``python scripts/optimize.py style=starry_night input=photo.jpg``.

The logic lives in fast_style/optimize.py (``optimize_photo``); the docs figures of Gatys'
reconstructions come from ``tools/reconstruction.py``.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import log_to_stderr, require, run_hydra_main, user_errors
from fast_style.losses import LossConfig
from fast_style.optimize import optimize_photo
from fast_style.script_configs import GATYS_STYLE_WEIGHTS, register_configs
from fast_style.styles import resolve_style_image

register_configs()  # the options' dataclasses (defaults, types): fast_style/script_configs.py


def gatys_loss(cfg: DictConfig) -> LossConfig:
    """The loss of the run: ``loss.*``, with Gatys' style weight for the loss network unless set."""
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    if loss["style_weight"] is None:
        loss["style_weight"] = GATYS_STYLE_WEIGHTS.get(cfg.loss_net.name, GATYS_STYLE_WEIGHTS["vgg19_caffe"])
    return LossConfig(**loss)


@hydra.main(version_base="1.3", config_path="../configs", config_name="optimize")
def main(cfg: DictConfig) -> None:
    log_to_stderr()
    with user_errors(cfg.verbose):
        require(cfg.input, "input", ": the photo to stylize")
        output = cfg.output or Path("optimized") / f"{Path(cfg.input).stem}_{cfg.style.name}.png"
        results = optimize_photo(
            cfg.input, resolve_style_image(cfg.style.name, cfg.style.image, cfg.style.url, cfg.style.filename),
            gatys_loss(cfg), output,
            style_size=cfg.style.size, loss_net=cfg.loss_net.name, weights=cfg.loss_net.weights, size=cfg.size,
            scales=cfg.scales, preserve_color=cfg.preserve_color, max_iter=cfg.max_iter, save_every=cfg.save_every,
            device=cfg.device, init=cfg.init, seed=cfg.seed, optimizer=cfg.optimizer, lr=cfg.lr,
            loss_scale=cfg.loss_scale,
        )
    print(output)
    terms = "  ".join(f"{k} {v:.4g}" for k, v in results[-1].history[-1].items())
    print(f"{terms}  ({sum(r.seconds for r in results):.1f} s, {sum(r.evaluations for r in results)} evaluations)")


if __name__ == "__main__":
    run_hydra_main(main)
