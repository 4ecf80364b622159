"""Pre-resize a photo folder into uint8 shards, once, so training decodes no JPEGs:

    python scripts/preprocess.py data.root=/data/coco/train2014 out=/data/coco/shards256 data.image_size=256
    python scripts/train.py data.root=/data/coco/shards256 ...        # autodetected (or data.shards=...)

The logic lives in fast_style/shards.py.
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

from fast_style.cli import list_skipped, log_to_stderr, require, run_hydra_main, user_errors
from fast_style.script_configs import register_configs
from fast_style.shards import preprocess

register_configs()  # the options' dataclasses (defaults, types): fast_style/script_configs.py


@hydra.main(version_base="1.3", config_path="../configs", config_name="preprocess")
def main(cfg: DictConfig) -> None:
    log_to_stderr(logging.ERROR)  # skips: summarised below
    with user_errors(cfg.verbose):
        require(cfg.data.root, "data.root", ": the photo folder to preprocess")
        require(cfg.out, "out", ": the folder to write the shards to")
        report = preprocess(
            cfg.data.root, cfg.out, image_size=cfg.data.image_size, shard_size=cfg.shard_size,
            workers=cfg.workers, max_bad_fraction=cfg.data.max_bad_fraction, overwrite=cfg.overwrite,
        )
    if report.skipped:
        print(f"skipped {len(report.skipped)} of {report.n_listed} file(s) as unreadable:\n"
              f"{list_skipped(report.skipped, 'index.json')}", file=sys.stderr)
    print(
        f"wrote {report.n_images} images at {report.image_size} px to {report.out} ({report.shards} shard(s), "
        f"{report.bytes / 2**20:.1f} MiB, {report.seconds:.1f} s); train with data.root={report.out}"
    )


if __name__ == "__main__":
    run_hydra_main(main)
