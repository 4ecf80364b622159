"""Larger batches at an equal number of images: which learning rate keeps up with batch 4?

    python benchmarks/bench_batches.py                                   # the docs/PERFORMANCE.md table
    python benchmarks/bench_batches.py --images 16000 --size 128 --device cuda --batches 4,16,64

Each run trains on ``--images`` images (steps = images / batch). The first batch size runs at
``--lr``; each larger batch b runs at ``--lr`` times each factor of ``--rules``: ``none`` (1),
``sqrt`` ((b / first)^(1/2), the square-root rule for Adam) and ``linear`` (b / first, SGD's
rule), passed as ``trainer.lr``. Reports the validation losses on ``--val`` photos: the loss per
image seen. Same seed, data order and network for every run. Prints a markdown table for
docs/PERFORMANCE.md ("Larger batches").
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fast_style.config import TrainConfig
from fast_style.loggers import NullLogger
from fast_style.train import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


RULES = {"none": 0.0, "sqrt": 0.5, "linear": 1.0}  # exponent of batch / the first batch


def run(args: argparse.Namespace, batch: int, rule: str, out: Path) -> tuple[float, dict[str, float], float]:
    """(lr used, final validation losses, seconds) of one training."""
    cfg = TrainConfig()
    cfg.style.image, cfg.style.size = args.style_image, 256
    cfg.data.root, cfg.data.val_root = args.photos, args.val
    cfg.data.image_size, cfg.data.batch_size, cfg.data.workers, cfg.data.n_val = args.size, batch, 1, 16
    cfg.model.width = args.width
    cfg.loss_net.name = "vgg19_caffe"
    # cfg.loss: the library defaults (the normalised recipe, style weight losses.STYLE_WEIGHT, which
    # configs/style/*.yaml also give), as scripts/train.py style=starry_night loss_net=vgg19_caffe trains
    cfg.device = args.device
    steps = args.images // batch
    base = int(args.batches.split(",")[0])
    cfg.trainer.steps, cfg.trainer.lr = steps, args.lr * (batch / base) ** RULES[rule]
    cfg.trainer.log_every = cfg.trainer.val_every = steps
    cfg.trainer.sample_every = cfg.trainer.ckpt_every = 10**9
    cfg.run_name = f"b{batch}_{rule}"
    cfg.run_dir, cfg.ckpt_out = str(out / "runs" / cfg.run_name), str(out / f"{cfg.run_name}.pt")
    start = time.perf_counter()
    result = train(cfg.validate(), logger=NullLogger())
    return cfg.trainer.lr, result.val_history[-1][1], time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", default=str(SHARED / "photos_train"))
    p.add_argument("--val", default=str(SHARED / "photos_val"))
    p.add_argument("--style-image", default=str(SHARED / "styles" / "starry_night.jpg"))
    p.add_argument("--images", type=int, default=1600, help="images seen by every run")
    p.add_argument("--size", type=int, default=64, help="crop size (px)")
    p.add_argument("--width", type=int, default=16, help="network width (32 = Johnson)")
    p.add_argument("--batches", default="4,16", help="comma-separated; the first runs at --lr only")
    p.add_argument("--rules", default="none,sqrt,linear")
    p.add_argument("--lr", type=float, default=1e-3, help="trainer.lr of the first batch size")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    runs = [(batches[0], "none")] + [(b, r) for b in batches[1:] for r in args.rules.split(",")]
    print("| batch | lr rule | lr | validation total | content | style | seconds |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for batch, rule in runs:
            lr, val, seconds = run(args, batch, rule, Path(tmp))
            print(f"| {batch} | {rule} | {lr:.3g} | {val['total']:.3g} | {val['content']:.3g} | {val['style']:.3g} "
                  f"| {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
