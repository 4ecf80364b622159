"""Regenerate the figures of docs/FEATURES.md (issue 8) from trained checkpoints:

    python tools/make_figures.py --single checkpoints/starry_night.pt \
        --multi checkpoints/starry_night+the_scream.pt --photos ../shared/data/photos_val

writes, in ``--out`` (docs/figures):

- ``style_mix_strip.png``: a two-style network, ``style_mix`` from 1/0 to 0/1 in ``--mix-steps``;
- ``strength_strip.png``: ``strength`` from 0 (the photo) to 1;
- ``color_style_inputs.png``: the style image as the loss sees it with ``preserve_color`` before
  training (``style.preserve_color=histogram``) or optimizing (``histogram``, ``luminance``);
- ``color_preservation.png``: photo | stylized | ``preserve_color=luminance`` | ``histogram``
  (fast-style), and the same for Gatys' optimisation (``--gatys-iters`` L-BFGS iterations; 0 skips);
- ``video_frames.png``: frames of a slowly panned photo, input and stylized with
  ``temporal_smoothing`` 0 and ``--smoothing``, with the amplified difference of two consecutive
  frames (flicker shows as bright speckle there).

- ``quality_curve.png`` (``--curve ck1.pt ck2.pt ...``, docs/QUALITY.md): each checkpoint's
  stylization of two unseen photos, one row per checkpoint, with the independent measure's style
  score and content change (fast_style.measure) over ``--curve-photos`` photos, printed as a table;
- ``shipped_styles.png`` (``--shipped name ...``, the README's opening grid): a photo none of the
  shipped networks saw, then its stylization by each.

Only the library API is used (Stylizer, fast_style.optimize, fast_style.video, fast_style.measure);
this file only lays the images out. ``--only mix,strength,style_inputs,color,video`` makes a subset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from fast_style.checkpoint import load_checkpoint
from fast_style.color import match_color_stats, rgb_to_ycbcr
from fast_style.data import list_images
from fast_style.device import resolve_device
from fast_style.images import load_batch, load_image, save_image, to_pil, to_tensor
from fast_style.losses import LossConfig
from fast_style.measure import MEASURE_SIZE, StyleScorer, flicker, panned_clip, stylize_frames
from fast_style.optimize import (
    GATYS_CONTENT_LAYER,
    GATYS_STYLE_LAYERS,
    build_criterion,
    color_preserving_style,
    optimize_multiscale,
)
from fast_style.styles import load_style_tensor, photo_color_stats, stored_style_image
from fast_style.stylize import Stylizer

REPO = Path(__file__).resolve().parents[1]
MIX_PHOTOS = ("bsds_201080.jpg", "bsds_228076.jpg")  # castle, lighthouse (photos_val)
COLOR_PHOTOS = ("bsds_29030.jpg", "bsds_201080.jpg")  # red car, castle
VIDEO_PHOTO = "bsds_228076.jpg"  # lighthouse: sky, sea and rocks, 481x321


def labeled_grid(rows: list[list[torch.Tensor]], col_labels: list[str], row_labels: list[str] | None = None,
                 cell_h: int = 160, pad: int = 4, label_h: int = 16, label_w: int = 0) -> Image.Image:
    """Images (3, H, W) in rows, each scaled to height ``cell_h``, with a caption per column
    (and per row when ``row_labels``). Cells of one column share the first row's width."""
    def scaled(x: torch.Tensor) -> Image.Image:
        img = to_pil(x)
        return img.resize((round(img.width * cell_h / img.height), cell_h), Image.Resampling.LANCZOS)

    cells = [[scaled(x) for x in row] for row in rows]
    widths = [max(r[j].width for r in cells if j < len(r)) for j in range(max(map(len, cells)))]
    label_w = label_w or (max(len(s) for s in row_labels) * 6 + 8 if row_labels else 0)
    width = label_w + sum(widths) + pad * (len(widths) + 1)
    height = label_h + len(cells) * (cell_h + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = label_w + pad
    for j, w in enumerate(widths):
        if j < len(col_labels):
            draw.text((x + 2, 2), col_labels[j], fill="black")
        x += w + pad
    for i, row in enumerate(cells):
        y = label_h + pad + i * (cell_h + pad)
        if row_labels:
            draw.text((4, y + cell_h // 2 - 6), row_labels[i], fill="black")
        x = label_w + pad
        for j, img in enumerate(row):
            canvas.paste(img, (x, y))
            x += widths[j] + pad
    return canvas


def photo_tensor(photos: Path, name: str, size: int) -> torch.Tensor:
    return load_batch(photos / name, size)[0]


def style_mix_strip(multi: Path, photos: Path, out: Path, steps: int, size: int, device: torch.device) -> Path:
    names = [str(n) for n in load_checkpoint(multi)["styles"]]
    if len(names) != 2:
        raise SystemExit(f"--multi: expected a two-style checkpoint, {multi} holds {names}")
    a, b = names
    weights = [1 - k / (steps - 1) for k in range(steps)]
    stylizers = [Stylizer.from_checkpoint(multi, device=device, style_mix={a: w, b: 1 - w}) for w in weights]
    rows = []
    for name in MIX_PHOTOS:
        x = photo_tensor(photos, name, size)
        rows.append([x, *[s(x) for s in stylizers]])
    labels = ["photo", *[f"{a} {w:.2f} / {b} {1 - w:.2f}" if 0 < w < 1 else (a if w == 1 else b) for w in weights]]
    print_mix_style_losses(load_checkpoint(multi)["config"], rows, labels, device)
    return save_image(labeled_grid(rows, labels, cell_h=size * 2 // 3), out / "style_mix_strip.png")


def print_mix_style_losses(config: dict, rows: list[list[torch.Tensor]], labels: list[str],
                           device: torch.device) -> None:
    """The independent measure's style score (fast_style.measure: 1 = as far from the painting as
    the photo) of every strip cell against each trained painting, mean over the rows: a mix should
    move from one painting to the other."""
    scorers = [StyleScorer(load_style_tensor(stored_style_image(c), MEASURE_SIZE), device=device)
               for c in config["styles"]]
    names = " / ".join(s["name"] for s in config["styles"])
    print(f"style score against {names} (mean over {len(rows)} photos; content change last):")
    photos = [r[0][None].to(device) for r in rows]
    for k, label in enumerate(labels):
        cells = [r[k][None].to(device) for r in rows]
        scores = [sc.score_many(cells, photos) for sc in scorers]
        print(f"  {label}: " + " / ".join(f"{v.style:.3f}" for v in scores) + f"  (content {scores[0].content:.3f})")


def gatys_row(ckpt_state: dict, x: torch.Tensor, iters: int, device: torch.device, style_image: str | None,
              style_factor: float) -> list[torch.Tensor]:
    """Gatys' optimisation of ``x`` from the photo (the checkpoint's style and style size,
    configs/optimize.yaml's weights with the style weight times ``style_factor``, vgg19_caffe), plain,
    with preserve_color=luminance and with =histogram."""
    style_cfg = ckpt_state["config"]["style"]
    gatys = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "optimize.yaml").gatys)
    style_weight = gatys["style_weight"]["vgg19_caffe"] * style_factor
    loss = LossConfig(content_weight=gatys["content_weight"], style_weight=style_weight,
                      tv_weight=1e3, normalize=False, content_layer=GATYS_CONTENT_LAYER,
                      style_layers=GATYS_STYLE_LAYERS)
    path = stored_style_image(style_cfg, style_image)
    style = load_style_tensor(path, int(style_cfg.get("size", 512)))
    photo = to_pil(x)
    net = None
    out = []
    for mode in (None, "luminance", "histogram"):
        criterion = build_criterion(net or "vgg19_caffe", color_preserving_style(style, x, mode), loss, device=device)
        net = criterion.loss_net
        (res,) = optimize_multiscale(criterion, photo, [max(x.shape[-2:])], device=device, max_iter=iters,
                                     progress=False, preserve_color=mode)
        out.append(res.image[0])
    return out


def chroma_distance(y: torch.Tensor, x: torch.Tensor) -> float:
    """Mean absolute difference of the Cb/Cr channels: how far the colours moved from the photo."""
    return (rgb_to_ycbcr(y.cpu())[1:] - rgb_to_ycbcr(x.cpu())[1:]).abs().mean().item()


def style_inputs_figure(single: Path, photos: Path, train_photos: Path, out: Path, style_image: str | None) -> Path:
    """What the loss sees as the style with preserve_color before training/optimizing: the painting,
    recoloured with the training photos' statistics (style.preserve_color=histogram), with one
    photo's (optimize.py preserve_color=histogram), and its luminance matched to that photo's
    (preserve_color=luminance)."""
    style_cfg = load_checkpoint(single)["config"]["style"]
    path = stored_style_image(style_cfg, style_image)
    style = load_style_tensor(path, 256)[0]
    photo = photo_tensor(photos, COLOR_PHOTOS[0], 256)
    mean, cov = photo_color_stats(train_photos)
    row = [style, match_color_stats(style, mean, cov), photo, color_preserving_style(style, photo, "histogram"),
           color_preserving_style(style, photo, "luminance")]
    labels = [style_cfg["name"], "training: style.preserve_color=histogram", "the photo",
              "optimize: histogram (this photo)", "optimize: luminance (this photo)"]
    return save_image(labeled_grid([row], labels, cell_h=170), out / "color_style_inputs.png")


def strength_strip(single: Path, photos: Path, out: Path, size: int, device: torch.device) -> Path:
    x = photo_tensor(photos, COLOR_PHOTOS[1], size)
    values = (0.0, 0.25, 0.5, 0.75, 1.0)
    row = [Stylizer.from_checkpoint(single, device=device, strength=v)(x) for v in values]
    return save_image(labeled_grid([row], [f"strength={v:g}" for v in values], cell_h=size * 2 // 3),
                      out / "strength_strip.png")


def color_figure(single: Path, photos: Path, out: Path, size: int, gatys_iters: int, device: torch.device,
                 style_image: str | None = None, style_factor: float = 10.0) -> Path:
    plain = Stylizer.from_checkpoint(single, device=device)
    lum = Stylizer.from_checkpoint(single, device=device, preserve_color="luminance")
    hist = Stylizer.from_checkpoint(single, device=device, preserve_color="histogram")
    rows, row_labels = [], []
    for name in COLOR_PHOTOS:
        x = photo_tensor(photos, name, size)
        rows.append([x, plain(x), lum(x), hist(x)])
        row_labels.append("fast-style")
    if gatys_iters > 0:
        x = photo_tensor(photos, COLOR_PHOTOS[0], size)
        rows.append([x, *gatys_row(load_checkpoint(single), x, gatys_iters, device, style_image, style_factor)])
        row_labels.append(f"Gatys {gatys_iters} it.")
        if style_factor != 1:
            row_labels[-1] += f" sw x{style_factor:g}"
    print("mean |CbCr(output) - CbCr(photo)| per pixel (0-1 scale), stylized / luminance / histogram:")
    for label, (x, *outs) in zip(row_labels, rows):
        print(f"  {label}: " + " / ".join(f"{chroma_distance(y, x):.4f}" for y in outs))
    labels = ["photo", f"stylized ({plain.style})", "preserve_color=luminance", "preserve_color=histogram"]
    return save_image(labeled_grid(rows, labels, row_labels, cell_h=size * 2 // 3), out / "color_preservation.png")


def video_figure(single: Path, photos: Path, out: Path, smoothing: float, frames: int, device: torch.device) -> Path:
    stylizer = Stylizer.from_checkpoint(single, device=device)
    clip = panned_clip(to_tensor(load_image(photos / VIDEO_PHOTO)), frames=frames)
    t = frames // 2
    rows, row_labels = [], []
    for label, video in (("input (1 px/frame pan)", clip),
                         ("stylized, temporal_smoothing=0", stylize_frames(stylizer, clip, 0.0)),
                         (f"stylized, temporal_smoothing={smoothing:g}", stylize_frames(stylizer, clip, smoothing))):
        diff = (video[t + 1] - video[t]).abs().mul(4).clamp(0, 1)
        rows.append([video[0], video[t], video[t + 1], diff])
        row_labels.append(f"{label}: flicker {flicker(video):.4f}")
    labels = ["frame 0", f"frame {t}", f"frame {t + 1}", f"|frame {t + 1} - frame {t}| x 4"]
    grid = labeled_grid(rows, labels, cell_h=150)
    # row captions above each row would crowd the cells: put them under the grid instead
    caption_h = 14 * len(row_labels) + 6
    canvas = Image.new("RGB", (grid.width, grid.height + caption_h), "white")
    canvas.paste(grid, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(row_labels):
        draw.text((6, grid.height + 2 + 14 * i), f"row {i + 1}: {text}", fill="black")
    return save_image(canvas, out / "video_frames.png")


def quality_curve(ckpts: list[Path], photos: Path, n: int, out: Path, style_image: str | None,
                  device: torch.device, size: int = MEASURE_SIZE) -> Path:
    """Style score and content change of each checkpoint on the first ``n`` unseen photos
    (stylized at ``size`` px; the measure's own 384 by default, as tests/quality/test_recipe.py),
    printed as a markdown table, and a grid: two photos, one column per checkpoint."""
    paths = list_images(photos)[:n]
    xs = [load_batch(p, size).to(device) for p in paths]
    scorers: dict[Path, StyleScorer] = {}  # one per painting: each checkpoint is scored against its own
    rows, labels = [[x[0] for x in xs[:2]]], ["photo"]
    print("| checkpoint | step | style score | content change | per layer (relu1_1..relu5_1) |\n|---|---|---|---|---|")
    for ckpt in ckpts:
        stylizer = Stylizer.from_checkpoint(ckpt, device=device)
        state = load_checkpoint(ckpt)
        painting = stored_style_image(state["config"]["style"], style_image)
        if painting not in scorers:
            scorers[painting] = StyleScorer(load_style_tensor(painting, MEASURE_SIZE), device=device)
        scorer = scorers[painting]
        ys = [stylizer(x) for x in xs]
        score = scorer.score_many(ys, xs)
        print(f"| {ckpt.name} | {state.get('step')} | {score.style:.3f} | {score.content:.3f} | "
              + ", ".join(f"{v:.2f}" for v in score.per_layer) + " |")
        rows.append([y[0] for y in ys[:2]])
        labels.append(f"step {state.get('step')}: style {score.style:.2f}, content {score.content:.2f}")
    grid = labeled_grid([list(col) for col in zip(*rows)], labels, cell_h=160)
    return save_image(grid, out / "quality_curve.png")


def shipped_grid(names: list[str], photo: Path, out: Path, size: int, device: torch.device) -> Path:
    """The README's opening figure: ``photo`` (seen by none of the networks) and each shipped style."""
    x = load_batch(photo, size)
    cells = [x[0]] + [Stylizer.from_checkpoint(name, device=device)(x.to(device))[0].cpu() for name in names]
    return save_image(labeled_grid([cells], ["photo", *names], cell_h=size * 2 // 3), out / "shipped_styles.png")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--single", default="checkpoints/starry_night.pt", help="a one-style checkpoint (colour, video)")
    p.add_argument("--multi", default="checkpoints/starry_night+the_scream.pt", help="a two-style checkpoint (mixing)")
    p.add_argument("--photos", default=str(REPO.parent / "shared" / "data" / "photos_val"), help="photos_val folder")
    p.add_argument("--out", default=str(REPO / "docs" / "figures"))
    p.add_argument("--train-photos", default=str(REPO.parent / "shared" / "data" / "photos_train"),
                   help="training photos (their colour statistics: style.preserve_color=histogram)")
    p.add_argument("--only", default="mix,strength,style_inputs,color,video")
    p.add_argument("--size", type=int, default=256, help="long side of the stylized photos (px)")
    p.add_argument("--mix-steps", type=int, default=5)
    p.add_argument("--gatys-iters", type=int, default=50, help="L-BFGS iterations of the Gatys colour row (0: none)")
    p.add_argument("--gatys-style-factor", type=float, default=10.0,
                   help="Gatys row: style weight times this (10: the style shows within --gatys-iters)")
    p.add_argument("--style-image", default=None, help="the painting for the Gatys row (default: the checkpoint's)")
    p.add_argument("--smoothing", type=float, default=0.9, help="temporal_smoothing of the video figure")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--curve", nargs="*", default=[], help="checkpoints of one run at increasing steps")
    p.add_argument("--curve-photos", type=int, default=8, help="unseen photos the curve is measured on")
    p.add_argument("--curve-size", type=int, default=MEASURE_SIZE, help="long side the curve stylizes at (px)")
    p.add_argument("--shipped", nargs="*", default=[], help="shipped style names for shipped_styles.png")
    p.add_argument("--shipped-photo", default=str(REPO / "fast_style" / "sample" / "photos" / "chelsea.jpg"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out, photos, device = Path(args.out), Path(args.photos), resolve_device(args.device)
    only = set(args.only.split(","))
    if "mix" in only:
        print(style_mix_strip(Path(args.multi), photos, out, args.mix_steps, args.size, device))
    if "strength" in only:
        print(strength_strip(Path(args.single), photos, out, args.size, device))
    if "style_inputs" in only:
        print(style_inputs_figure(Path(args.single), photos, Path(args.train_photos), out, args.style_image))
    if "color" in only:
        print(color_figure(Path(args.single), photos, out, args.size, args.gatys_iters, device, args.style_image,
                           args.gatys_style_factor))
    if "video" in only:
        print(video_figure(Path(args.single), photos, out, args.smoothing, args.frames, device))
    if args.curve:
        print(quality_curve([Path(c) for c in args.curve], photos, args.curve_photos, out, args.style_image, device,
                            args.curve_size))
    if args.shipped:
        print(shipped_grid(args.shipped, Path(args.shipped_photo), out, args.size, device))


if __name__ == "__main__":
    main()
