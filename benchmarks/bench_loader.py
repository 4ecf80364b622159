"""Input-pipeline benchmark: training DataLoader throughput alone (no model), JPEG folder vs shards.

    python benchmarks/bench_loader.py --root ../shared/data/photos_train            # shards made in a temp dir
    python benchmarks/bench_loader.py --root /data/coco/train2014 --shards /data/coco/shards256 --workers 0,2,4,8

Exactly the loader training builds (fast_style.data.build_loader: the seeded endless sampler,
``persistent_workers``, ``prefetch_factor=4``), at ``--size`` px and ``--batch`` images per batch.
The first ``--warmup`` batches (worker start-up, first reads) are not timed; files are read once
beforehand so both sources are measured from the page cache (training reads the same files every
epoch). Prints a markdown table for docs/PERFORMANCE.md ("Input pipeline").
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fast_style.data import PhotoFolder, ShardDataset, build_loader, list_images
from fast_style.shards import preprocess


def images_per_second(dataset, batch: int, workers: int, batches: int, warmup: int, repeats: int) -> float:
    """Median over ``repeats`` timed runs of ``batches`` batches (after ``warmup`` untimed ones)."""
    loader = build_loader(dataset, batch, seed=0, workers=workers)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batches * batch / (time.perf_counter() - t))
    del it, loader  # stop the persistent workers before the next configuration
    return statistics.median(rates)


def warm_cache(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 22):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="photo folder (COCO-style)")
    parser.add_argument("--shards", help="shard folder of --root (default: made now in a temp dir)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--batches", type=int, default=75, help="timed batches per configuration")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (median)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the main process (default: torch's; DataLoader workers use 1)")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    files = list_images(args.root)
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        shards = Path(args.shards) if args.shards else Path(tmp) / "shards"
        if not args.shards:
            report = preprocess(args.root, shards, image_size=args.size, progress=False)
            print(f"preprocess: {report.n_images} images in {report.seconds:.1f} s "
                  f"({report.n_images / report.seconds:.0f} img/s with {os.cpu_count()} processes), "
                  f"{report.bytes / 2**20:.0f} MiB")
        sources = {
            "JPEG folder": PhotoFolder(args.root, args.size),
            "shards": ShardDataset(shards, args.size),
        }
        warm_cache(files)
        warm_cache(sorted(shards.glob("*.npy")))
        results = {
            (name, w): images_per_second(ds, args.batch, w, args.batches, args.warmup, args.repeats)
            for w in workers
            for name, ds in sources.items()
        }
    print(f"\n{len(files)} photos, {args.size} px, batch {args.batch}, median of {args.repeats} x "
          f"{args.batches} batches, main process {torch.get_num_threads()} torch thread(s)")
    print("| source | " + " | ".join(f"{w} worker{'s' if w != 1 else ''}" for w in workers) + " |")
    print("|---|" + "---|" * len(workers))
    for name in sources:
        print(f"| {name} | " + " | ".join(f"{results[name, w]:.0f} img/s" for w in workers) + " |")
    print("| shards / JPEG | " + " | ".join(
        f"{results['shards', w] / results['JPEG folder', w]:.1f}x" for w in workers) + " |")


if __name__ == "__main__":
    main()
