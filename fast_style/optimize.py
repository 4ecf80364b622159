"""Gatys et al. (2016) style transfer by optimising the pixels of one image: the reference that a
fast feed-forward network approximates in one pass. Plain functions; ``scripts/optimize.py`` is
the hydra front end and ``fast_style.evaluate`` uses the same functions.

The objective is :class:`fast_style.losses.PerceptualLoss` itself (the same content, Gram/style
and TV code and the same preprocessing as training), so an optimised image and a stylized one
are measured with one yardstick.

Loss scale: with Grams divided by c·h·w and mean-squared errors, the gradient of the weighted
loss with respect to a pixel is tiny (~5e-7 per pixel for unit-normalised losses). L-BFGS's
stopping tests (``tolerance_grad``, ``tolerance_change``) are absolute, so it would stop after
one step, and its first step length is ``lr / |g|_1``. We therefore minimise ``loss_scale · loss``
where ``loss_scale`` (default: automatic) makes the mean absolute gradient at the initial image
1. The minimiser is unchanged; all reported losses are unscaled.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from fast_style.color import check_mode as check_color_mode
from fast_style.color import grey, luminance, match_color, match_luminance, preserve_luminance
from fast_style.device import resolve_device
from fast_style.errors import ConfigError
from fast_style.images import batch_from_image, load_image, save_image
from fast_style.losses import (  # noqa: F401 - the Gatys layers are re-exported for optimize's callers
    GATYS_CONTENT_LAYER,
    GATYS_STYLE_LAYERS,
    LossConfig,
    LossTerms,
    PerceptualLoss,
    terms_dict,
)
from fast_style.models import LossNet, build_loss_net
from fast_style.styles import load_style_tensor

OPTIMIZERS = ("lbfgs", "adam")


@dataclass
class OptimizeResult:
    """What one optimisation produced.

    ``history[i]`` holds the unscaled loss terms of iterate ``i`` (``0`` = the initial image) and
    ``times[i]`` the wall time (s) when iterate ``i`` was reached; ``snapshots[i]`` the iterate ``i``
    images asked for (clamped to [0, 1], on the CPU).
    """

    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    loss_scale: float = 1.0
    seconds: float = 0.0
    evaluations: int = 0


def build_criterion(
    loss_net: str | LossNet,
    style_image: torch.Tensor,
    loss: LossConfig,
    weights: str = "imagenet",
    device: torch.device | str = "cpu",
    seed: int = 0,
    reference: torch.Tensor | Sequence[torch.Tensor] | None = None,
) -> PerceptualLoss:
    """The training criterion (one PerceptualLoss code path), on ``device``. ``reference``: the
    photo(s) whose distance to the painting normalises each style layer (``loss.normalize``)."""
    if isinstance(loss_net, str):
        net = build_loss_net(loss_net, weights, loss.for_loss_net(loss_net).layers, seed=seed)
    else:
        net = loss_net
    return PerceptualLoss(net.to(device), style_image.to(device), loss, reference=reference)


def color_preserving_style(style: torch.Tensor, content: torch.Tensor, mode: str | None) -> torch.Tensor:
    """The style image to optimise against when keeping the photo's colours (Gatys et al. 2016,
    "Preserving color in neural artistic style transfer"). ``content``: the photo, (1,) 3, H, W.

    ``histogram``: the style image recoloured with the photo's RGB mean and covariance
    (:func:`fast_style.color.match_color`); the optimisation then runs as usual.
    ``luminance``: the style's luminance with the photo's luminance mean/std, as a grey image;
    pair it with ``optimize_multiscale(..., preserve_color="luminance")``, which optimises the
    luminance alone and puts the photo's chroma back. ``None``: the style unchanged."""
    if check_color_mode(mode) is None:
        return style
    content = content if content.dim() == 4 else content.unsqueeze(0)
    style4 = style if style.dim() == 4 else style.unsqueeze(0)
    out = match_color(style4, content[0]) if mode == "histogram" else match_luminance(style4, content[:1])
    return out if style.dim() == 4 else out[0]


def initial_image(
    init: str, content: torch.Tensor, seed: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """``content`` (the photo), ``noise`` (uniform white noise, Gatys' start) or a path to a
    fast-style checkpoint whose stylization of the photo is the start (polishing a fast result)."""
    device = device or content.device
    if init == "content":
        return content.detach().clone().to(device)
    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=g).to(device)
    path = Path(init).expanduser()
    if path.suffix == ".pt" or path.exists():
        from fast_style.stylize import Stylizer  # late: only this init needs the transformer

        stylizer = Stylizer.from_checkpoint(path, device=device if isinstance(device, torch.device) else str(device))
        return stylizer.stylize_batch(content).detach().to(device)
    raise ConfigError(f"init={init!r}: use content, noise or a path to a fast-style checkpoint (.pt)")


class _Clamp01(torch.autograd.Function):
    """``x.clamp(0, 1)`` whose gradient also reaches an out-of-range pixel when descent would move
    it back inside. The true gradient there is 0, so a pixel that one L-BFGS step pushed past a
    bound stayed saturated for good: 29 % of a conv1_2 content reconstruction ended at exactly 0 or
    1 (13.6 dB; 19.1 dB and 0.4 % with this gradient, and a 17× lower loss). Values are unchanged."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        keep = ((x >= 0) & (x <= 1)) | ((x > 1) & (grad > 0)) | ((x < 0) & (grad < 0))
        return grad * keep


def clamp01(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1]; see :class:`_Clamp01` for the gradient."""
    return _Clamp01.apply(x)


def optimize_image(
    criterion: PerceptualLoss,
    content: torch.Tensor,
    init: torch.Tensor,
    *,
    optimizer: str = "lbfgs",
    max_iter: int = 300,
    lr: float | None = None,
    loss_scale: float | None = None,
    snapshot_at: Sequence[int] = (),
    save_every: int = 0,
    on_snapshot: Callable[[int, torch.Tensor], None] | None = None,
    progress: bool = True,
    desc: str = "optimize",
    luminance_only: bool = False,
) -> OptimizeResult:
    """Minimise ``criterion(x, content).total`` over the pixels ``x``, starting from ``init``.

    ``luminance_only``: Gatys' luminance-only transfer. The variable is one luminance channel
    (initialised with ``init``'s), the loss network sees it on all three channels and the content
    target is the photo's luminance; images returned are grey (put the chroma back with
    :func:`fast_style.color.preserve_luminance`, as ``optimize_multiscale`` does).

    L-BFGS (strong-Wolfe line search, history 100) or Adam. Every ``save_every`` iterations (and
    at ``snapshot_at``) the iterate is clamped, stored in ``snapshots`` and passed to
    ``on_snapshot``. The loss is that of ``x.clamp(0, 1)``, the image that is saved: measured
    unclamped, pixels drift outside [0, 1] and the saved image's loss rose again between 100 and
    300 iterations (docs/QUALITY.md); a projection after each step instead would break L-BFGS'
    monotone decrease. Out-of-range pixels still get the gradient that pulls them back inside
    (:func:`clamp01`); with the plain clamp's zero gradient they stayed saturated.
    """
    content, init = _checked_inputs(optimizer, max_iter, content, init)
    pixels = _Pixels(criterion, content, init, luminance_only)
    if loss_scale is None:
        loss_scale = pixels.unit_gradient_scale()
    log = _Log(pixels, max_iter, snapshot_at, save_every, on_snapshot, progress=progress, desc=desc)
    marks = _snapshot_marks(snapshot_at, save_every, max_iter)
    if optimizer == "lbfgs":
        _run_lbfgs(pixels, log, marks, 1.0 if lr is None else lr, loss_scale)
    else:
        _run_adam(pixels, log, marks, 0.02 if lr is None else lr, loss_scale, max_iter)
    return log.finish(float(loss_scale))


def _checked_inputs(
    optimizer: str, max_iter: int, content: torch.Tensor, init: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``content`` and ``init`` as batches of one, after refusing what cannot run."""
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer={optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if max_iter < 0:
        raise ConfigError(f"max_iter must be >= 0, got {max_iter}")
    content = content if content.dim() == 4 else content.unsqueeze(0)
    init = init if init.dim() == 4 else init.unsqueeze(0)
    if init.shape != content.shape:
        raise ConfigError(f"initial image {tuple(init.shape)} and content {tuple(content.shape)} differ in size")
    return content, init


def _snapshot_marks(snapshot_at: Sequence[int], save_every: int, max_iter: int) -> list[int]:
    """The iterates to snapshot, ascending: those asked for, every ``save_every``-th and the last."""
    marks = sorted({i for i in snapshot_at if 0 <= i <= max_iter} | {max_iter})
    if save_every > 0:
        marks = sorted(set(marks) | set(range(save_every, max_iter + 1, save_every)))
    return marks


class _Pixels:
    """The variable being optimised and the loss it is measured with."""

    def __init__(self, criterion: PerceptualLoss, content: torch.Tensor, init: torch.Tensor, luminance_only: bool):
        if luminance_only:
            content, init = grey(content), luminance(init)
        self.criterion = criterion
        self.luminance_only = luminance_only
        self.target = criterion.content_target(content)
        # Start inside [0, 1] (a bicubic upsample between scales overshoots): the loss only sees the
        # clamped image, so an out-of-range start would only be pulled back over several steps.
        self.x = init.detach().clamp(0, 1).to(content.device).requires_grad_(True)

    def image(self) -> torch.Tensor:
        """What the loss sees: x, or the luminance x on three channels."""
        return grey(self.x) if self.luminance_only else self.x

    def clamped(self) -> torch.Tensor:
        """The image as it is saved: clamped to [0, 1], on the CPU."""
        return self.image().detach().clamp(0, 1).cpu()

    def terms(self) -> LossTerms:
        """The unscaled loss of the clamped image."""
        return self.criterion.terms(clamp01(self.image()), self.target)

    def unit_gradient_scale(self) -> float:
        """The ``loss_scale`` that makes the mean absolute gradient at this image 1 (module docstring)."""
        (grad,) = torch.autograd.grad(self.terms().total, self.x)
        mean_abs = grad.abs().mean().item()
        return 1.0 / mean_abs if mean_abs > 0 and math.isfinite(mean_abs) else 1.0


class _Log:
    """What is kept of each iterate while optimising: the lowest loss terms evaluated for it (an
    L-BFGS line search evaluates one iterate several times) and when, the snapshots asked for,
    the evaluation count; and the progress bar."""

    def __init__(
        self,
        pixels: _Pixels,
        max_iter: int,
        snapshot_at: Sequence[int],
        save_every: int,
        on_snapshot: Callable[[int, torch.Tensor], None] | None,
        *,
        progress: bool,
        desc: str,
    ):
        self.pixels = pixels
        self.max_iter = max_iter
        self.snapshot_at = snapshot_at
        self.save_every = save_every
        self.on_snapshot = on_snapshot
        self.best: dict[int, tuple[float, dict[str, float], float]] = {}  # iterate -> (total, terms, seconds)
        self.snapshots: dict[int, torch.Tensor] = {}
        self.evaluations = 0
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=max_iter, desc=desc, unit="it", disable=not progress, dynamic_ncols=True)

    def record(self, i: int, terms: LossTerms) -> None:
        """One evaluation of iterate ``i``; its lowest total is the one kept."""
        values = terms_dict(terms)
        self.evaluations += 1
        if i not in self.best or values["total"] < self.best[i][0]:
            self.best[i] = (values["total"], values, time.perf_counter() - self.t0)

    def advance(self, shown: int) -> None:
        """One iteration done: the bar moves and shows the loss terms of iterate ``shown``."""
        self.bar.update(1)
        if shown in self.best:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in self.best[shown][1].items()})

    def snapshot(self, i: int) -> None:
        """Keep the current image as iterate ``i``'s and pass it to ``on_snapshot``."""
        current = self.pixels.clamped()
        if i in self.snapshot_at or (self.save_every > 0 and i % self.save_every == 0) or i == self.max_iter:
            self.snapshots[i] = current
            if self.on_snapshot is not None:
                self.on_snapshot(i, current)

    def finish(self, loss_scale: float) -> OptimizeResult:
        """Close the bar and return the result, the last iterate measured exactly (its line search
        may still be holding a better trial)."""
        self.bar.close()
        best = self.best
        with torch.no_grad():
            last = max(best) if best else 0
            terms = self.pixels.criterion.terms(self.pixels.image().clamp(0, 1), self.pixels.target)
            seconds = best[last][2] if last in best else time.perf_counter() - self.t0
            best[last] = (0.0, terms_dict(terms), seconds)
        return OptimizeResult(
            image=self.pixels.clamped(),
            history=[best[i][1] for i in sorted(best)],
            snapshots=self.snapshots,
            times=[best[i][2] for i in sorted(best)],
            loss_scale=loss_scale,
            seconds=time.perf_counter() - self.t0,
            evaluations=self.evaluations,
        )


def _run_lbfgs(pixels: _Pixels, log: _Log, marks: list[int], lr: float, loss_scale: float) -> None:
    """L-BFGS up to each mark in turn, snapshotting there; stops early where it converged."""
    x = pixels.x
    opt = torch.optim.LBFGS(
        [x], lr=lr, max_iter=1, max_eval=10**9,
        tolerance_grad=1e-12, tolerance_change=0.0, history_size=100, line_search_fn="strong_wolfe",
    )
    reached = 0

    def closure() -> torch.Tensor:
        nonlocal reached
        opt.zero_grad()
        terms = pixels.terms()
        # Iterate this evaluation belongs to: n_iter is bumped before each line search, so
        # evaluations inside iteration k's search count for iterate k, whose value is the
        # lowest of them (strong Wolfe keeps the best bracket point).
        i = opt.state[x].get("n_iter", 0)
        log.record(i, terms)
        if i > reached:
            reached = i
            log.advance(i - 1)
        scaled = terms.total * loss_scale
        scaled.backward()
        return scaled

    done = 0
    for mark in marks:
        if mark > done:
            opt.param_groups[0]["max_iter"] = mark - done
            opt.step(closure)
            done = opt.state[x].get("n_iter", 0)
        log.snapshot(mark)
        if done < mark:  # converged early (gradient vanished): nothing more will change
            break


def _run_adam(pixels: _Pixels, log: _Log, marks: list[int], lr: float, loss_scale: float, max_iter: int) -> None:
    """``max_iter`` Adam steps, each iterate measured once and snapshotted at the marks."""
    opt = torch.optim.Adam([pixels.x], lr=lr)
    for i in range(max_iter + 1):
        opt.zero_grad()
        terms = pixels.terms()
        log.record(i, terms)
        if i in marks:
            log.snapshot(i)
        if i == max_iter:
            break
        (terms.total * loss_scale).backward()
        opt.step()
        log.advance(i)


def optimize_multiscale(
    criterion: PerceptualLoss,
    content: Image.Image,
    scales: Sequence[int],
    init: str = "content",
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    on_snapshot: Callable[[int, int, torch.Tensor], None] | None = None,
    preserve_color: str | None = None,
    **kwargs,
) -> list[OptimizeResult]:
    """Coarse to fine: optimise at each long side in ``scales`` (ascending), upsampling each result
    as the start of the next. Large outputs get their coarse structure from cheap small
    iterations and only need a few at full size. Returns one result per scale.

    ``preserve_color="luminance"`` (the criterion built on ``color_preserving_style(style, photo,
    "luminance")``): the luminance alone is optimised and every image returned or passed to
    ``on_snapshot`` carries the photo's chroma (the grey iterate's luminance + the photo's Cb/Cr).
    ``"histogram"`` changes only the style image, so nothing happens here."""
    if not scales:
        raise ConfigError("scales must name at least one size (long side, px)")
    check_color_mode(preserve_color)
    lum = preserve_color == "luminance"
    results: list[OptimizeResult] = []
    prev: torch.Tensor | None = None
    for size in sorted(int(s) for s in scales):
        photo = batch_from_image(content, size).to(device)
        if prev is None:
            start = initial_image(init, photo, seed=seed, device=device)
        else:
            start = F.interpolate(prev.to(device), size=photo.shape[-2:], mode="bicubic", align_corners=False)

        def colour(img: torch.Tensor, photo: torch.Tensor = photo.cpu()) -> torch.Tensor:  # noqa: B008 - binds this scale's photo
            return preserve_luminance(img, photo) if lum else img

        hook = None if on_snapshot is None else (lambda i, img, size=size: on_snapshot(size, i, colour(img)))
        res = optimize_image(
            criterion, photo, start, on_snapshot=hook, desc=f"optimize {size}px", luminance_only=lum, **kwargs
        )
        prev = res.image  # the next scale starts from this scale's (grey, with luminance) iterate
        if lum:
            res.image = colour(res.image)
            res.snapshots = {i: colour(img) for i, img in res.snapshots.items()}
        results.append(res)
    return results


def optimize_photo(
    photo: str | os.PathLike,
    style_image: str | os.PathLike,
    loss: LossConfig,
    output: str | os.PathLike,
    *,
    style_size: int,
    loss_net: str = "vgg19_caffe",
    weights: str = "imagenet",
    size: int = 256,
    scales: Sequence[int] | None = None,
    preserve_color: str | None = None,
    max_iter: int = 300,
    save_every: int = 0,
    device: torch.device | str = "auto",
    **kwargs,
) -> list[OptimizeResult]:
    """``scripts/optimize.py``: one photo file optimised against one style image file, written to
    ``output`` (with ``save_every``: the iterates next to it, ``<stem>_<size>px_iter0050.png``).

    ``scales``: coarse-to-fine long sides (default ``[size]``); ``preserve_color``: the style image
    takes the photo's colours (``histogram``) or both become luminance (``luminance``; the photo's
    chroma is put back on the result), Gatys et al. 2016. ``kwargs`` go to
    :func:`optimize_multiscale` (``init``, ``seed``, ``optimizer``, ``lr``, ``loss_scale``).
    Returns one result per scale; the last one's image is the one written.
    """
    out = Path(output)
    if out.resolve() == Path(photo).resolve():
        raise ConfigError(f"output {out} would overwrite the input image")
    dev = resolve_device(device) if isinstance(device, str) else device
    content = load_image(photo)
    scales = list(scales) if scales else [size]
    photo_batch = batch_from_image(content, max(scales))
    style = color_preserving_style(load_style_tensor(style_image, style_size), photo_batch, preserve_color)
    criterion = build_criterion(loss_net, style, loss, weights=weights, device=dev, reference=photo_batch)

    def on_snapshot(at_size: int, i: int, image: torch.Tensor) -> None:
        if save_every and i % save_every == 0 and i < max_iter:
            save_image(image, out.with_name(f"{out.stem}_{at_size}px_iter{i:04d}{out.suffix}"))

    results = optimize_multiscale(
        criterion, content, scales, device=dev, on_snapshot=on_snapshot, max_iter=max_iter,
        save_every=save_every, preserve_color=preserve_color, **kwargs,
    )
    save_image(results[-1].image, out)
    return results


CONTENT_RECON_LAYERS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")


def reconstruct_content(
    loss_net: LossNet, photo: torch.Tensor, layer: str, max_iter: int = 100, seed: int = 0, progress: bool = False
) -> OptimizeResult:
    """Gatys' content reconstruction: from white noise, match one layer's features of ``photo``
    (style weight 0, no TV). Shows what each layer keeps of the image."""
    cfg = LossConfig(content_weight=1.0, style_weight=0.0, tv_weight=0.0, content_layer=layer, style_layers=(layer,))
    criterion = PerceptualLoss(loss_net, photo, cfg, reference=photo)
    start = initial_image("noise", photo, seed=seed)
    return optimize_image(criterion, photo, start, max_iter=max_iter, progress=progress, desc=f"content {layer}")


def synthesize_texture(
    loss_net: LossNet, style: torch.Tensor, layers: Sequence[str], size: tuple[int, int],
    max_iter: int = 100, seed: int = 0, progress: bool = False,
) -> OptimizeResult:
    """Gatys' texture synthesis: from white noise, match the Grams of ``layers`` (content weight 0)."""
    cfg = LossConfig(content_weight=0.0, style_weight=1.0, tv_weight=0.0, content_layer=layers[0], style_layers=layers)
    dummy = torch.zeros(1, 3, *size, device=style.device)
    start = initial_image("noise", dummy, seed=seed)
    criterion = PerceptualLoss(loss_net, style, cfg, reference=start)  # 1.0 = the noise it starts from
    return optimize_image(criterion, dummy, start, max_iter=max_iter, progress=progress, desc=f"texture {layers[-1]}")
