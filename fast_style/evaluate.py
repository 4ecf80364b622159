"""How good is a fast-style network? Measure it against the optimisation it approximates.

Two yardsticks, side by side, so that no recipe grades itself only with its own loss:

- the independent measure of :mod:`fast_style.measure` (Gatys' layers on the Caffe VGG19, relative
  to the photo): **style score** and **content change** for the photo, the network and each Gatys
  iterate;
- the loss table below.

For each photo: stylize it with the checkpoint and run Gatys' L-BFGS on the same objective, from
white noise (``init=noise``: the start of Gatys et al. and of Johnson et al.'s baseline, whose
"as good as 50-100 iterations" claim this reproduces) or from the photo (``init=content``), then
score both with one fixed evaluation loss: the checkpoint's own loss (its layers, weights, style
image and style size; classic raw-MSE checkpoints: Johnson's layers) on ``vgg19_caffe`` (real
ImageNet weights, offline). A fixed yardstick makes checkpoints trained with different loss
networks comparable, and "as good as N L-BFGS iterations" is a number anyone can reproduce.
Plain functions; ``scripts/evaluate.py`` is the hydra front end.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.data import list_images, resolve_photo_root
from fast_style.device import resolve_device
from fast_style.errors import ConfigError
from fast_style.images import image_grid, load_batch, save_image, to_pil
from fast_style.losses import JOHNSON_STYLE_LAYERS, TERMS, LossConfig, PerceptualLoss, terms_dict
from fast_style.measure import MEASURE_SIZE, StyleScorer
from fast_style.optimize import build_criterion, initial_image, optimize_image
from fast_style.styles import load_style_tensor, stored_style_image

log = logging.getLogger(__name__)

EVAL_LOSS_NET = "vgg19_caffe"
GATYS_INITS = ("noise", "content")


@dataclass
class EvalReport:
    rows: list[dict[str, Any]] = field(default_factory=list)      # photo, method, terms, seconds
    means: list[dict[str, Any]] = field(default_factory=list)     # per method
    curves: dict[str, list[float]] = field(default_factory=dict)  # photo -> total per L-BFGS iterate
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def evaluation_loss_config(train_config: dict[str, Any]) -> LossConfig:
    """The checkpoint's training loss, expressed for vgg19_caffe.

    A normalised recipe (``loss.normalize``, relative errors) keeps its exact weights whatever
    network it trained with: they do not depend on the feature scale. A classic (raw MSE)
    checkpoint trained with vgg19_caffe keeps its weights too; one trained with another network
    uses its style's ``style_weight.vgg19_caffe`` with its own content and TV weights.
    """
    loss = train_config.get("loss", {})
    style = train_config.get("style", {})
    normalize = bool(loss.get("normalize", False))  # checkpoints from before the option: raw MSEs
    style_weight = loss.get("style_weight", 1e7)
    per_net = style.get("style_weight")  # classic style configs: {loss_net: weight}
    if not normalize and train_config.get("loss_net", {}).get("name") != EVAL_LOSS_NET and isinstance(per_net, dict):
        style_weight = per_net.get(EVAL_LOSS_NET, 1e7)
    # a normalised checkpoint is measured with its own layers; a classic one with Johnson's
    layers = {"content_layer": "relu2_2", "style_layers": JOHNSON_STYLE_LAYERS}
    if normalize:
        layers = {"content_layer": loss.get("content_layer"), "style_layers": loss.get("style_layers"),
                  "style_layer_weights": loss.get("style_layer_weights")}
    return LossConfig(
        normalize=normalize,
        content_weight=float(loss.get("content_weight", 1e5)),
        style_weight=float(style_weight),
        tv_weight=float(loss.get("tv_weight", 1e2)),
        **layers,
    ).for_loss_net(EVAL_LOSS_NET)


def _photo_paths(photos: str | Path, n: int) -> list[Path]:
    photos = resolve_photo_root(photos)  # photos=sample: the embedded photos
    if photos.is_file():
        return [photos]
    if not photos.is_dir():
        raise ConfigError(f"photos={photos}: no such file or folder")
    paths = list_images(photos)[:n]
    if not paths:
        raise ConfigError(f"photos={photos}: no images in this folder")
    return [Path(p) for p in paths]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _score(criterion: PerceptualLoss, image: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    terms = criterion(image.to(photo.device), photo)
    return terms_dict(terms)


@dataclass
class _Yardsticks:
    """The two measures every image gets: the checkpoint's own loss on vgg19_caffe (``criterion``)
    and the independent style score and content change (``scorer``)."""

    criterion: PerceptualLoss
    scorer: StyleScorer

    def row(self, path: Path, method: str, image: torch.Tensor, photo: torch.Tensor, seconds: float) -> dict[str, Any]:
        """One report row: ``image`` (made from ``photo`` by ``method`` in ``seconds``) measured both ways."""
        measured = self.scorer.score(image, photo)
        return {"photo": path.name, "method": method, **_score(self.criterion, image, photo), "seconds": seconds,
                "style_score": measured.style, "content_change": measured.content}


def evaluate(
    ckpt: str | Path,
    photos: str | Path,
    out_dir: str | Path,
    n: int = 8,
    size: int = 256,
    iters: list[int] | tuple[int, ...] = (50, 100, 300),
    device: str = "auto",
    style_image: str | None = None,
    progress: bool = True,
    init: str = "noise",
    seed: int = 0,
) -> EvalReport:
    """Score the checkpoint and Gatys runs on ``n`` photos; write CSV, JSON, grid and plot to ``out_dir``.

    ``init``: where each L-BFGS run starts, ``noise`` (uniform white noise from ``seed``) or
    ``content`` (the photo); the matching iteration is only comparable between reports of one init.
    """
    iters = _checked_iters(iters, init)
    dev = resolve_device(device)
    state = load_checkpoint(ckpt)
    train_config = state.get("config") or {}
    model = model_from_checkpoint(state).to(dev).eval()
    loss_cfg = evaluation_loss_config(train_config)
    style_path = stored_style_image(train_config.get("style", {}), style_image)
    style_size = int(train_config.get("style", {}).get("size", 512))
    paths = _photo_paths(photos, n)
    # normalised: each style layer relative to these photos' own distance to the painting
    criterion = build_criterion(EVAL_LOSS_NET, load_style_tensor(style_path, style_size), loss_cfg, device=dev,
                                reference=[load_batch(p, size) for p in paths])
    sticks = _Yardsticks(criterion, StyleScorer(load_style_tensor(style_path, MEASURE_SIZE), device=dev))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = EvalReport(settings=_settings(
        ckpt, state, loss_cfg, paths, dev, style_image=str(style_path), style_size=style_size, size=size,
        iters=iters, gatys_init=init, seed=seed,
    ))
    shown = iters[-2:] if len(iters) > 1 else iters
    with torch.no_grad():  # warm-up, so the first photo's time is not allocator/first-call cost
        model(load_batch(paths[0], size).to(dev))
    grid_rows = [
        _evaluate_photo(report, sticks, model, path, load_batch(path, size).to(dev), iters, shown,
                        init=init, seed=seed, progress=progress)
        for path in paths
    ]
    fast_mean = _add_means(report)
    _write_files(report, grid_rows, shown, fast_mean, out, init)
    return report


def _checked_iters(iters: list[int] | tuple[int, ...], init: str) -> list[int]:
    """The iterations to report, ascending and distinct, once they and ``init`` are known to be valid."""
    iters = sorted({int(i) for i in iters})
    if not iters or iters[0] < 1:
        raise ConfigError(f"iters must be positive iteration counts, got {iters}")
    if init not in GATYS_INITS:
        raise ConfigError(f"init={init!r}: Gatys' L-BFGS starts from {' or '.join(GATYS_INITS)}")
    return iters


def _settings(
    ckpt: str | Path, state: dict[str, Any], loss_cfg: LossConfig, paths: list[Path], dev: torch.device,
    **choices: Any,
) -> dict[str, Any]:
    """What a report was measured with: the checkpoint, both yardsticks, this run's ``choices``
    (in the order given) and the machine."""
    return {
        "ckpt": str(ckpt), "style": state.get("style"), "trained_with": state.get("loss_net"),
        "step": state.get("step"), "eval_loss_net": EVAL_LOSS_NET, "loss": {
            "content_weight": loss_cfg.content_weight, "style_weight": loss_cfg.style_weight,
            "tv_weight": loss_cfg.tv_weight, "content_layer": loss_cfg.content_layer,
            "style_layers": list(loss_cfg.style_layers), "normalize": loss_cfg.normalize},
        "measure": {"loss_net": "vgg19_caffe", "size": MEASURE_SIZE, "style_layers": "relu1_1..relu5_1",
                    "content_layer": "relu4_2"},
        **choices,
        "device": str(dev), "threads": torch.get_num_threads(),
        "photos": [str(p) for p in paths],
    }


def _evaluate_photo(
    report: EvalReport, sticks: _Yardsticks, model: torch.nn.Module, path: Path, photo: torch.Tensor,
    iters: list[int], shown: list[int], *, init: str, seed: int, progress: bool,
) -> torch.Tensor:
    """Add one photo's rows (the photo, the network, each Gatys iterate in ``iters``) and its
    L-BFGS curve to ``report``; returns its grid strip (photo, network, the ``shown`` iterates)."""
    dev = photo.device
    _sync(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        fast = model.stylize(photo)
    _sync(dev)
    fast_s = time.perf_counter() - t0
    report.rows.append(sticks.row(path, "photo", photo, photo, 0.0))
    report.rows.append(sticks.row(path, "fast-style", fast, photo, fast_s))
    start = initial_image(init, photo, seed=seed)
    res = optimize_image(sticks.criterion, photo, start, max_iter=iters[-1], snapshot_at=iters, progress=progress,
                         desc=f"L-BFGS from {init} {path.name}")
    for i in iters:
        image = res.snapshots.get(i, res.image)
        seconds = res.times[min(i, len(res.times) - 1)]
        report.rows.append(sticks.row(path, f"gatys-{i}", image, photo, seconds))
    report.curves[path.name] = [h["total"] for h in res.history]
    tiles = [photo.cpu(), fast.cpu()] + [res.snapshots.get(i, res.image) for i in shown]
    return image_grid([torch.cat(tiles)])


def _add_means(report: EvalReport) -> float:
    """Add each method's mean row and the L-BFGS iterate the network matches; returns the
    network's mean total loss."""
    methods = list(dict.fromkeys(r["method"] for r in report.rows))
    for m in methods:
        rows = [r for r in report.rows if r["method"] == m]
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in COLUMNS}
        report.means.append({"photo": "mean", "method": m, **mean})
    fast_mean = next(r["total"] for r in report.means if r["method"] == "fast-style")
    report.settings["fast_style_matches_iteration"] = _matching_iteration(report.curves, fast_mean)
    return fast_mean


def _write_files(
    report: EvalReport, grid_rows: list[torch.Tensor], shown: list[int], fast_mean: float, out: Path, init: str
) -> None:
    """losses.csv, grid.png, loss_vs_iter.png and losses.json in ``out``, listed in ``report.files``."""
    report.files["csv"] = str(_write_csv(report, out / "losses.csv"))
    report.files["grid"] = str(_write_grid(grid_rows, out / "grid.png"))
    report.files["plot"] = str(plot_curves(report.curves, fast_mean, out / "loss_vs_iter.png", init))
    report.files["json"] = str(out / "losses.json")
    (out / "losses.json").write_text(json.dumps(
        {"settings": report.settings, "rows": report.rows, "means": report.means, "curves": report.curves,
         "grid_columns": ["photo", "fast-style", *[f"gatys-{i}" for i in shown]], "files": report.files}, indent=2))


COLUMNS = (*TERMS, "seconds", "style_score", "content_change")


def _matching_iteration(curves: dict[str, list[float]], target: float) -> int | None:
    """First L-BFGS iterate whose mean total loss (over photos) is at or below ``target``."""
    length = min(len(c) for c in curves.values())
    for i in range(length):
        if sum(c[i] for c in curves.values()) / len(curves) <= target:
            return i
    return None


def _write_csv(report: EvalReport, path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["photo", "method", *COLUMNS])
        writer.writeheader()
        for row in [*report.rows, *report.means]:
            writer.writerow(row)
    return path


def _write_grid(rows: list[torch.Tensor], path: Path) -> Path:
    """Photos differ in shape, so each photo is its own strip; strips are stacked on white."""
    pil = [to_pil(r) for r in rows]
    width = max(p.width for p in pil)
    canvas = Image.new("RGB", (width, sum(p.height for p in pil)), "white")
    y = 0
    for p in pil:
        canvas.paste(p, (0, y))
        y += p.height
    return save_image(canvas, path)


def plot_curves(curves: dict[str, list[float]], fast_total: float, path: Path, init: str = "noise") -> Path:
    """Total loss vs L-BFGS iteration (each photo thin, the mean thick), fast-style mean as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    length = min(len(c) for c in curves.values())
    for curve in curves.values():
        ax.plot(range(len(curve)), curve, color="tab:blue", alpha=0.25, linewidth=0.8)
    mean = [sum(c[i] for c in curves.values()) / len(curves) for i in range(length)]
    ax.plot(range(length), mean, color="tab:blue", linewidth=2, label=f"Gatys L-BFGS from {init} (mean over photos)")
    ax.axhline(fast_total, color="tab:red", linestyle="--", label="fast-style checkpoint (mean)")
    ax.set_xlabel("L-BFGS iteration")
    ax.set_ylabel("total loss (the checkpoint's own, on vgg19_caffe)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def format_table(report: EvalReport) -> str:
    """A fixed-width text table: per photo, then the means."""
    head = (f"{'photo':<18} {'method':<11} {'style score':>11} {'content chg':>11} | {'content':>10} "
            f"{'style':>10} {'tv':>9} {'total':>10} {'seconds':>8}")
    lines = [
        "style score / content change: independent measure (VGG19 Caffe, Gatys' layers, relative to the photo;",
        "lower is closer to the painting / to the photo); content..total: the checkpoint's own loss.",
        head, "-" * len(head),
    ]
    for r in [*report.rows, *report.means]:
        lines.append(
            f"{r['photo']:<18} {r['method']:<11} {r['style_score']:>11.3f} {r['content_change']:>11.3f} | "
            f"{r['content']:>10.4g} {r['style']:>10.4g} {r['tv']:>9.3g} {r['total']:>10.4g} {r['seconds']:>8.3f}"
        )
    return "\n".join(lines)
