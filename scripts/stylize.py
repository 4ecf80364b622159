"""Stylize photos, folders or videos: ``python scripts/stylize.py ckpt=checkpoints/starry_night.pt input=photo.jpg``."""

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import log_to_stderr, require, run_hydra_main, style_argument, user_errors
from fast_style.errors import ConfigError
from fast_style.fileio import ensure_writable_dir
from fast_style.script_configs import register_schemas
from fast_style.stylize import Stylizer, stylize_paths
from fast_style.video import is_video_file, stylize_video

register_schemas()  # configs/stylize.yaml is typed: scale=abc is one error line


@hydra.main(version_base="1.3", config_path="../configs", config_name="stylize")
def main(cfg: DictConfig) -> None:
    log_to_stderr()
    logging.getLogger("fast_style.onnx_backend").setLevel(logging.INFO)  # say why the first run takes longer
    with user_errors(cfg.verbose):
        require(cfg.ckpt, "ckpt", ", e.g. ckpt=checkpoints/starry_night.pt")
        require(cfg.input, "input", ": an image file or a folder of images")
        style_mix = OmegaConf.to_container(cfg.style_mix) if cfg.style_mix else None
        stylizer = Stylizer.from_checkpoint(
            cfg.ckpt, device=cfg.device, style=cfg.style_name, style_mix=style_mix,
            strength=cfg.strength, preserve_color=cfg.preserve_color, tile_size=cfg.tile_size,
            compile=cfg.compile, backend=cfg.backend, max_pixels=cfg.max_pixels, precision=cfg.precision,
        )
        source = Path(cfg.input)
        if source.is_file() and is_video_file(source):
            out = Path(cfg.output) if cfg.output else Path("stylized") / f"{source.stem}_{stylizer.style}.mp4"
            try:  # before the first frame, not after the last
                ensure_writable_dir(out.parent)
            except OSError as e:
                raise ConfigError(f"cannot write to output folder {out.parent} ({e.strerror or e})") from None
            report = stylize_video(
                stylizer, source, out, batch_size=cfg.batch_size, temporal_smoothing=cfg.temporal_smoothing
            )
            print(f"{report.output} ({report.frames} frames at {float(report.fps):.3g} fps"
                  f"{', audio kept' if report.has_audio else ''})")
            return
        written, errors = stylize_paths(
            stylizer, cfg.input, cfg.output, scale=cfg.scale, batch_size=cfg.batch_size, workers=cfg.workers
        )
    for path in written:
        print(path)
    if errors:
        print(f"{len(errors)} of {len(errors) + len(written)} image(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    sys.argv[1:] = style_argument(sys.argv[1:])
    run_hydra_main(main)
