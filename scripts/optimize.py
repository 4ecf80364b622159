"""Gatys et al. optimisation: ``python scripts/optimize.py style=starry_night input=photo.jpg``.

``mode=reconstruct`` makes the docs figures (content reconstruction per layer, texture synthesis).
All logic lives in fast_style/optimize.py.
"""

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import user_errors
from fast_style.config import resolve_device
from fast_style.errors import ConfigError
from fast_style.images import load_image, resize_long_side, save_image, to_tensor
from fast_style.losses import LossConfig
from fast_style.models import build_loss_net
from fast_style.optimize import (
    CONTENT_RECON_LAYERS,
    GATYS_STYLE_LAYERS,
    build_criterion,
    color_preserving_style,
    optimize_multiscale,
    reconstruction_strips,
)
from fast_style.styles import resolve_style_image
from fast_style.train import load_style_tensor


def _style_path(cfg: DictConfig) -> Path:
    return resolve_style_image(cfg.style.name, cfg.style.image, cfg.style.url, cfg.style.filename)


def run_reconstruct(cfg: DictConfig) -> None:
    rc = cfg.reconstruct
    if not rc.photo:
        raise ConfigError("mode=reconstruct needs input=photo.jpg (or reconstruct.photo=)")
    device = resolve_device(cfg.device)
    layers = [*CONTENT_RECON_LAYERS, *GATYS_STYLE_LAYERS]
    net = build_loss_net(cfg.loss_net.name, cfg.loss_net.weights, layers).to(device)
    photo = to_tensor(resize_long_side(load_image(rc.photo), rc.size)).unsqueeze(0).to(device)
    style = load_style_tensor(Path(rc.style_image) if rc.style_image else _style_path(cfg), rc.size).to(device)
    content_strip, texture_strip, scores = reconstruction_strips(net, photo, style, max_iter=rc.max_iter, seed=cfg.seed)
    out = Path(rc.out_dir)
    print(save_image(content_strip, out / f"content_reconstruction_{cfg.loss_net.name}.png"))
    print(save_image(texture_strip, out / f"texture_synthesis_{cfg.style.name}_{cfg.loss_net.name}.png"))
    for layer, value in scores.items():
        print(f"PSNR {layer}: {value:.2f} dB")


def run_stylize(cfg: DictConfig) -> None:
    if not cfg.input:
        raise ConfigError("input= is required: the photo to stylize")
    device = resolve_device(cfg.device)
    content = load_image(cfg.input)
    loss = LossConfig(**OmegaConf.to_container(cfg.loss, resolve=True))
    style = load_style_tensor(_style_path(cfg), cfg.style.size)
    # preserve_color: the style image takes the photo's colours (histogram) or both become
    # luminance (luminance; the photo's chroma is put back on the result): Gatys et al. 2016
    photo = to_tensor(resize_long_side(content, max(cfg.scales or [cfg.size])))
    style = color_preserving_style(style, photo, cfg.preserve_color)
    criterion = build_criterion(cfg.loss_net.name, style, loss, weights=cfg.loss_net.weights, device=device)
    out = Path(cfg.output) if cfg.output else Path("optimized") / f"{Path(cfg.input).stem}_{cfg.style.name}.png"
    if out.resolve() == Path(cfg.input).resolve():
        raise ConfigError(f"output {out} would overwrite the input image")
    scales = list(cfg.scales) if cfg.scales else [cfg.size]

    def on_snapshot(size: int, i: int, image) -> None:
        if cfg.save_every and i % cfg.save_every == 0 and i < cfg.max_iter:
            save_image(image, out.with_name(f"{out.stem}_{size}px_iter{i:04d}{out.suffix}"))

    results = optimize_multiscale(
        criterion, content, scales, init=cfg.init, device=device, seed=cfg.seed, on_snapshot=on_snapshot,
        optimizer=cfg.optimizer, max_iter=cfg.max_iter, lr=cfg.lr, loss_scale=cfg.loss_scale,
        save_every=cfg.save_every, preserve_color=cfg.preserve_color,
    )
    final = results[-1]
    print(save_image(final.image, out))
    terms = "  ".join(f"{k} {v:.4g}" for k, v in final.history[-1].items())
    print(f"{terms}  ({sum(r.seconds for r in results):.1f} s, {sum(r.evaluations for r in results)} evaluations)")


@hydra.main(version_base="1.3", config_path="../configs", config_name="optimize")
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    with user_errors(cfg.verbose):
        if cfg.mode == "reconstruct":
            run_reconstruct(cfg)
        elif cfg.mode == "stylize":
            run_stylize(cfg)
        else:
            raise ConfigError(f"mode={cfg.mode!r}: use stylize or reconstruct")


if __name__ == "__main__":
    main()
