"""Measure a training recipe on several paintings at several budgets (docs/QUALITY.md's tables).

    OMP_NUM_THREADS=1 python tools/recipe_table.py --out runs/table/new \
        --styles starry_night the_scream candy --steps 100 200 1000 -- loss.style_weight=1

For each painting of ``../shared/data/styles`` named in ``--styles`` it trains one network with
``scripts/train.py`` (the real command line; everything after ``--`` is passed to it as hydra
overrides), stopping at each budget of ``--steps`` and resuming from there, so one run gives every
budget. Each kept checkpoint is then scored with the independent measure (fast_style.measure) on
the first ``--photos`` photos of ``photos_val``, stylized at ``--size`` px on the long side (240:
the "half size" of the issues; BSDS photos are 481x321). Prints a markdown table and writes
``scores.json`` in ``--out``. Reruns skip the checkpoints that exist, so a stopped table resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
BASE = [
    "loss_net=vgg19_caffe", "data.image_size=128", "data.workers=0", "logger=none",
    "trainer.compile=false", "trainer.sample_every=1000000", "trainer.val_every=1000000",
    "trainer.log_every=50", "trainer.ckpt_every=1000000", "overwrite=true",
]


def train_to(style: str, steps: int, previous: Path | None, out: Path, overrides: list[str]) -> Path:
    ckpt = out / f"{style}_{steps}.pt"
    if ckpt.exists():
        return ckpt
    preset = style if (REPO / "configs" / "style" / f"{style}.yaml").exists() else "starry_night"
    args = [sys.executable, str(REPO / "scripts" / "train.py"), f"style={preset}", f"style.name={style}",
            f"style.image={SHARED / 'styles' / f'{style}.jpg'}", f"data.root={SHARED / 'photos_train'}",
            *BASE, f"trainer.steps={steps}", f"ckpt_out={ckpt}", f"hydra.run.dir={out / 'runs' / style}",
            *([f"resume={previous}"] if previous else []), *overrides]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    print(f"# trained {style} to {steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    return ckpt


def score(ckpt: Path | None, style: str, n: int, size: int) -> dict[str, float]:
    """The measure of ``ckpt``'s outputs; ``ckpt=None`` scores the painting itself at ``size``:
    what an output with the painting's own look scores there, since the measure compares at
    MEASURE_SIZE and an output made smaller loses the finest strokes to the resampling (the floor
    a half-size score is read against)."""
    from fast_style.data import list_images
    from fast_style.images import load_batch
    from fast_style.measure import MEASURE_SIZE, StyleScorer
    from fast_style.styles import load_style_tensor
    from fast_style.stylize import Stylizer

    photos = [load_batch(p, size) for p in list_images(SHARED / "photos_val")[:n]]
    scorer = StyleScorer(load_style_tensor(SHARED / "styles" / f"{style}.jpg", MEASURE_SIZE))
    if ckpt is None:  # the painting itself, resized to the stylization size, as every photo's output
        outputs = [load_style_tensor(SHARED / "styles" / f"{style}.jpg", size)] * len(photos)
    else:
        stylizer = Stylizer.from_checkpoint(ckpt, backend="torch")
        with torch.inference_mode():
            outputs = [stylizer(x) for x in photos]
    s = scorer.score_many(outputs, photos)
    return {"style": round(s.style, 3), "content": round(s.content, 3),
            "per_layer": [round(v, 2) for v in s.per_layer]}


def figure(out: Path, dirs: list[Path], labels: list[str], styles: list[str], steps: int, size: int) -> Path:
    """One row per painting: the painting, an unseen photo, then that photo stylized by the
    ``steps`` checkpoint of each run folder in ``dirs`` (the first one holding it)."""
    from make_figures import labeled_grid  # tools/ is this script's folder, first on sys.path

    from fast_style.data import list_images
    from fast_style.images import load_batch, save_image
    from fast_style.styles import load_style_tensor
    from fast_style.stylize import Stylizer

    photo = load_batch(list_images(SHARED / "photos_val")[2], size)
    h, w = photo.shape[-2:]
    rows = []
    for style in styles:
        painting = torch.nn.functional.interpolate(load_style_tensor(SHARED / "styles" / f"{style}.jpg", 512),
                                                   size=(h, w), mode="bilinear", antialias=True)
        cells = [painting[0], photo[0]]
        for group in dirs:
            ckpt = next((d / f"{style}_{steps}.pt" for d in group if (d / f"{style}_{steps}.pt").exists()), None)
            blank = torch.ones_like(photo[0])  # a run that has no checkpoint of this painting
            cells.append(Stylizer.from_checkpoint(ckpt, backend="torch")(photo)[0] if ckpt else blank)
        rows.append(cells)
    grid = labeled_grid(rows, ["painting", "photo", *labels], row_labels=styles, cell_h=h)
    return save_image(grid, out)


def table(dirs: list[list[Path]], labels: list[str], styles: list[str], steps: list[int], photos: int = 8,
          size: int = 240) -> str:
    """Markdown: one row per painting, style score / content change of each run group at each
    budget (read from the groups' scores.json; – where a budget was not trained), and last the
    style score of the painting itself at ``size`` (:func:`score` with no checkpoint): the floor."""
    scores = [{} for _ in dirs]
    for merged, group in zip(scores, dirs):
        for d in group:
            if (d / "scores.json").exists():
                merged.update(json.loads((d / "scores.json").read_text()))
    head = [f"{label} {n}" for n in steps for label in labels] + ["the painting itself"]
    lines = ["| painting | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for style in styles:
        cells = []
        for n in steps:
            for merged in scores:
                s = merged.get(f"{style}@{n}")
                cells.append(f"{s['style']:.2f} / {s['content']:.2f}" if s else "–")
        cells.append(f"{score(None, style, photos, size)['style']:.2f}")
        lines.append(f"| {style} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="folder of the checkpoints and scores.json (required to train)")
    p.add_argument("--styles", nargs="+", required=True)
    p.add_argument("--steps", nargs="+", type=int, default=[100, 200, 1000])
    p.add_argument("--photos", type=int, default=8)
    p.add_argument("--size", type=int, default=240)
    p.add_argument("--figure", type=Path, help="instead of training: write this comparison figure of the run "
                   "folders in --compare at the first of --steps")
    p.add_argument("--table", action="store_true", help="instead of training: print the markdown table of the run "
                   "folders in --compare (style score / content change at each of --steps)")
    p.add_argument("--compare", nargs="+", default=[], help="LABEL=DIR[,DIR...] run folders for --figure/--table")
    p.add_argument("overrides", nargs="*", help="hydra overrides for scripts/train.py (after --)")
    args = p.parse_args()
    groups = [[Path(d) for d in c.split("=", 1)[1].split(",")] for c in args.compare]
    labels = [c.split("=", 1)[0] for c in args.compare]
    if args.figure:
        print(figure(args.figure, groups, labels, args.styles, args.steps[0], args.size))
        return
    if args.table:
        print(table(groups, labels, args.styles, args.steps, args.photos, args.size))
        return
    if args.out is None:
        p.error("--out is required to train")
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "scores.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for style in args.styles:
        previous = None
        for steps in sorted(args.steps):
            ckpt = train_to(style, steps, previous, args.out, args.overrides)
            key = f"{style}@{steps}"
            if key not in results:
                results[key] = score(ckpt, style, args.photos, args.size)
                # merged with what other runs into the same folder wrote meanwhile (one per painting)
                on_disk = json.loads(results_file.read_text()) if results_file.exists() else {}
                results = {**on_disk, **results}
                results_file.write_text(json.dumps(results, indent=1))
            print(f"| {style} | {steps} | {results[key]['style']:.2f} | {results[key]['content']:.2f} | "
                  f"{', '.join(f'{v:.2f}' for v in results[key]['per_layer'])} |", flush=True)
            previous = ckpt


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
