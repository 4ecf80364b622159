"""Stylize photos, folders or videos: ``python scripts/stylize.py ckpt=checkpoints/starry_night.pt input=photo.jpg``."""

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from fast_style.cli import log_to_stderr, require, run_hydra_main, style_argument, user_errors
from fast_style.errors import ConfigError
from fast_style.fileio import ensure_writable_dir
from fast_style.script_configs import register_configs
from fast_style.stylize import Stylizer, check_photo, check_scale, load_network, plan_outputs, stylize_paths
from fast_style.video import is_video_file, stylize_video, video_output

register_configs()  # the options' dataclasses (defaults, types): fast_style/script_configs.py


@hydra.main(version_base="1.3", config_path="../configs", config_name="stylize")
def main(cfg: DictConfig) -> None:
    log_to_stderr()
    logging.getLogger("fast_style.onnx_backend").setLevel(logging.INFO)  # say why the first run takes longer
    with user_errors(cfg.verbose):
        require(cfg.ckpt, "ckpt", ", e.g. ckpt=checkpoints/starry_night.pt")
        require(cfg.input, "input", ": an image file or a folder of images")
        scale = check_scale(cfg.scale)
        style_mix = OmegaConf.to_container(cfg.style_mix) if isinstance(cfg.style_mix, DictConfig) else cfg.style_mix
        model, label, weights = load_network(cfg.ckpt, style=cfg.style_name, style_mix=style_mix)
        # Every output is planned and proved writable before the Stylizer starts (its first run
        # exports the network to ONNX, seconds of work that a refused output would waste).
        source = Path(cfg.input)
        video = source.is_file() and is_video_file(source)
        if video:
            if scale != 1.0:
                raise ConfigError(f"scale={cfg.scale:g} applies to images; a video is stylized at its own size "
                                  "(resize it first, e.g. ffmpeg -i in.mp4 -vf scale=iw/2:-2 out.mp4)")
            out = video_output(source, cfg.output, label)
            folders = [out.parent]
        else:
            folders = dict.fromkeys(dst.parent for _, dst in plan_outputs(
                source, Path(cfg.output) if cfg.output else None, label))
            if source.is_file():  # one photo: its size limits are fatal, so they come first too
                check_photo(source, scale, cfg.tile_size, cfg.max_pixels)
        for folder in folders:
            try:
                ensure_writable_dir(folder)
            except OSError as e:
                raise ConfigError(f"cannot write to output folder {folder} ({e.strerror or e})") from None
        stylizer = Stylizer(
            model, style=label, device=cfg.device, style_weights=weights,
            strength=cfg.strength, preserve_color=cfg.preserve_color, tile_size=cfg.tile_size,
            compile=cfg.compile, backend=cfg.backend, max_pixels=cfg.max_pixels, precision=cfg.precision,
        )
        if video:
            report = stylize_video(
                stylizer, source, out, batch_size=cfg.batch_size, temporal_smoothing=cfg.temporal_smoothing
            )
            print(f"{report.output} ({report.frames} frames at {float(report.fps):.3g} fps"
                  f"{', audio kept' if report.has_audio else ''})")
            return
        written, errors = stylize_paths(
            stylizer, cfg.input, cfg.output, scale=scale, batch_size=cfg.batch_size, workers=cfg.workers
        )
    for path in written:
        print(path)
    if errors:
        print(f"{len(errors)} of {len(errors) + len(written)} image(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    sys.argv[1:] = style_argument(sys.argv[1:])
    run_hydra_main(main)
