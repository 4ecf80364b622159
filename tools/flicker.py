"""Measure video flicker against ``temporal_smoothing``, reproducibly, without a codec:

    python tools/flicker.py --ckpt checkpoints/starry_night.pt \
        --photo ../shared/data/photos_val/bsds_228076.jpg --smoothing 0,0.5,0.8,0.9,0.95

Two clips are made from one photo (fast_style.measure.panned_clip): a slow pan (1 px per frame)
and a static shot with Gaussian sensor noise (std 2/255), each ``--frames`` frames of 240x320.
Each is stylized in memory exactly as ``scripts/stylize.py input=clip.mp4 temporal_smoothing=a``
stylizes a video (fast_style.measure.stylize_frames), and the flicker is the mean absolute
difference between consecutive output frames (0-1 scale); ``excess`` subtracts the input clip's
own flicker (what the motion or the noise alone causes), and the motion-compensated flicker
undoes the known pan (frame t+1 against frame t moved by 1 px): only change that the motion does
not explain is left, which is what a viewer sees as flicker. Results: docs/FEATURES.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fast_style.images import load_image, to_tensor
from fast_style.measure import flicker_report, panned_clip
from fast_style.stylize import Stylizer

CLIPS = {"pan": {"step": 1, "noise": 0.0}, "static+noise": {"step": 0, "noise": 2 / 255}}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ckpt", required=True, help="a fast-style checkpoint")
    p.add_argument("--photo", required=True, help="a landscape photo at least 240 x (320 + frames) px")
    p.add_argument("--style", default=None, help="multi-style checkpoints: which style")
    p.add_argument("--smoothing", default="0,0.5,0.8,0.9,0.95", help="temporal_smoothing values, comma-separated")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--clips", default=",".join(CLIPS), help=f"comma-separated, from: {', '.join(CLIPS)}")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    stylizer = Stylizer.from_checkpoint(args.ckpt, device=args.device, style=args.style)
    photo = to_tensor(load_image(args.photo))
    alphas = [float(a) for a in args.smoothing.split(",")]
    rows = []
    print(f"checkpoint {args.ckpt} ({stylizer.style}), photo {Path(args.photo).name}, {args.frames} frames 240x320")
    print("| clip | temporal_smoothing | input flicker | output flicker | excess (output - input) "
          "| motion-compensated output flicker (input's) |")
    print("|---|---|---|---|---|---|")
    for name in args.clips.split(","):
        clip = panned_clip(photo, frames=args.frames, **CLIPS[name])
        t0 = time.perf_counter()
        for row in flicker_report(stylizer, clip, alphas, shift=CLIPS[name]["step"]):
            row = {"clip": name, **row}
            rows.append(row)
            print(f"| {name} | {row['temporal_smoothing']:g} | {row['input']:.4f} | {row['flicker']:.4f} | "
                  f"{row['excess']:+.4f} | {row['compensated']:.4f} ({row['input_compensated']:.4f}) |", flush=True)
        rows[-1]["seconds"] = time.perf_counter() - t0
    if args.json:
        record = {"ckpt": str(args.ckpt), "photo": str(args.photo), "rows": rows}
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
