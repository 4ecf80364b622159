"""The training loop: a plain function over a :class:`TrainConfig`; no hydra in here.

Data flow per step: photos -> ImageTransformNet -> stylized batch -> PerceptualLoss (frozen VGG
features of output and input, style Grams computed once) -> Adam step. Host syncs (``.item()``)
happen only at log intervals, so the GPU is never stalled waiting for the CPU.

Multi-style (``cfg.styles``, conditional instance norm): step ``s`` trains style ``s % N`` with
that style's own PerceptualLoss (its Grams computed once; one shared loss network), so the style
order is a pure function of the step and resume stays exact. Samples show one row per style;
validation losses are the mean over the trained styles. ``cfg.finetune`` adds ``cfg.styles`` to a
trained multi-style checkpoint by training only the new styles' instance-norm rows.

Distributed (``torchrun --nproc_per_node=N scripts/train.py ...``, see :mod:`fast_style.distributed`):
the network is wrapped in DistributedDataParallel, ``data.batch_size`` is the GLOBAL batch (each
process loads ``batch_size / N`` images: its strided share of the same global batch, so results
match a single process with that batch), and only rank 0 reads checkpoints, scans the data, loads
the style images (then broadcasts them), logs, draws the progress bar, writes samples, validates
and saves. Every rank learns of a stop request (SIGINT/SIGTERM to any of them) at the same step.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from fast_style import distributed
from fast_style.checkpoint import (
    check_final_replacement,
    identity_differences,
    identity_of_state,
    load_checkpoint,
    model_from_checkpoint,
    network_identity,
    save_checkpoint,
)
from fast_style.config import StyleConfig, TrainConfig, style_label, train_config_to_dict
from fast_style.dashboard import build_logger
from fast_style.data import build_loader, fixed_photos, open_training_data, resolve_training_data
from fast_style.errors import CheckpointError, ConfigError, FastStyleError
from fast_style.fileio import remove_stale_temps
from fast_style.images import image_grid, save_image
from fast_style.loggers import NullLogger
from fast_style.losses import LossTerms, PerceptualLoss
from fast_style.models import ImageTransformNet, TransformerConfig, build_loss_net
from fast_style.models.transformer import ConditionalInstanceNorm2d, extend_styles
from fast_style.photos import check_bad_fraction
from fast_style.styles import load_style_tensor, match_training_colors, resolve_style_image

log = logging.getLogger(__name__)

# trainer.compile=auto: what a cold torch.compile of the training step costs and buys, per device
# type. CPU figures measured on 2 cores (docs/PERFORMANCE.md: Johnson net, 256 px, batch 4:
# 2.63 s per eager step, 1.75x compiled, ~50 s cold compile); the speed-up is taken at 1.5x to stay
# on the safe side. CUDA figures are assumptions (not measured here): ~0.1 s per such step,
# ~60 s to compile. ``seconds_per_pixel`` = eager step time / (batch x pixels) for width 32.
COMPILE_COSTS = {
    "cpu": {"compile_s": 50.0, "speedup": 1.5, "seconds_per_pixel": 2.63 / (4 * 256 * 256)},
    "cuda": {"compile_s": 60.0, "speedup": 1.5, "seconds_per_pixel": 0.1 / (4 * 256 * 256)},
}


def decide_compile(setting: bool | str, device: torch.device, steps_left: int, batch_size: int,
                   image_size: int, width: int = 32) -> tuple[bool, str]:
    """(compile?, reason) for ``trainer.compile``: true/false as given; ``auto`` compiles when the
    estimated time saved over the remaining steps repays the cold compile with a 2x margin
    (the estimate is rough, and a needless compile costs a short run most).

    Estimated eager step = seconds_per_pixel x batch x image_size^2 x (width / 32) ^ 0.5 (the
    loss network, independent of width, is most of a step: half the width was 1.37x, not 4x,
    faster); saved per step = step x (1 - 1 / speedup)."""
    if setting is not True and setting is not False and setting != "auto":
        raise ConfigError(f"trainer.compile must be true, false or auto, got {setting!r}")
    if setting != "auto":
        return bool(setting), f"trainer.compile={str(setting).lower()}"
    costs = COMPILE_COSTS.get(device.type, COMPILE_COSTS["cuda"])
    step_s = costs["seconds_per_pixel"] * batch_size * image_size**2 * (width / 32) ** 0.5
    saved = max(steps_left, 0) * step_s * (1 - 1 / costs["speedup"])
    decision = saved >= 2 * costs["compile_s"]
    return decision, (
        f"trainer.compile=auto: {'compiling' if decision else 'eager'} ({steps_left} steps x ~{step_s:.2g} s "
        f"estimated on {device.type}: compiling would save ~{saved:.0f} s against a ~{costs['compile_s']:.0f} s "
        f"cold compile{'' if decision else '; it pays from ~2x that'})"
    )

TERMS = LossTerms._fields


@dataclass
class TrainResult:
    checkpoint: Path
    step: int
    interrupted: bool = False
    # (step, {"content":..., "style":..., "tv":..., "total":...}) averaged over each log interval
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    val_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    # training files skipped as unreadable (header scan + lazily while decoding), with reasons
    bad_files: list[tuple[Path, str]] = field(default_factory=list)
    rollbacks: int = 0  # times a non-finite loss sent the run back to its last good checkpoint
    rank: int = 0  # this process's rank in a torchrun job (0 when not distributed)
    world_size: int = 1


class StopRequest:
    """First SIGINT/SIGTERM: finish the current step, checkpoint, exit cleanly. Second: abort."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write(
            f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint "
            "(press Ctrl-C again to abort without saving)",
            file=sys.stderr,
        )

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class StyleTarget:
    """One style a run trains: its config, its row in the conditional instance norms (None for a
    single-style network), its image (long side = ``size``) and, once built, its loss."""

    config: StyleConfig
    index: int | None
    image: torch.Tensor
    criterion: PerceptualLoss | None = None


def load_style_targets(cfg: TrainConfig, first_index: int = 0) -> list[StyleTarget]:
    """Resolve and load every style image of the run (before the data scan: a missing one fails fast)."""
    styles = cfg.styles or [cfg.style]
    targets = []
    for i, style in enumerate(styles):
        path = resolve_style_image(style.name, style.image, style.url, style.filename)
        index = first_index + i if cfg.styles else None
        targets.append(StyleTarget(style, index, load_style_tensor(path, style.size)))
    match_training_colors(targets, cfg)  # style.preserve_color=histogram: the photos' colours (no-op when off)
    return targets


def build_criteria(targets: list[StyleTarget], cfg: TrainConfig, device: torch.device) -> None:
    """One PerceptualLoss per style, all sharing one loss network. A single style uses ``cfg.loss``
    as is; in a multi-style run each style takes its own style and tv weight (its configs/style file)."""
    layers = cfg.loss.for_loss_net(cfg.loss_net.name).layers
    loss_net = build_loss_net(cfg.loss_net.name, cfg.loss_net.weights, layers, seed=cfg.seed).to(device)
    for t in targets:
        loss_cfg = cfg.loss
        if t.index is not None:
            loss_cfg = replace(
                cfg.loss, style_weight=t.config.style_weight, tv_weight=t.config.tv_weight
            )
        t.criterion = PerceptualLoss(loss_net, t.image.to(device), loss_cfg)


def prepare_finetune(model: ImageTransformNet, n_old: int) -> list[torch.nn.Parameter]:
    """Freeze everything but the conditional instance norms, and their first ``n_old`` rows too
    (a gradient hook zeroes them, so Adam never moves them); returns the parameters to optimise."""
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = []
    mask_rows = torch.arange(model.config.n_styles) >= n_old
    for m in model.modules():
        if isinstance(m, ConditionalInstanceNorm2d):
            for p in (m.weight, m.bias):
                p.requires_grad_(True)
                mask = mask_rows.to(p.device, p.dtype)[:, None]
                p.register_hook(lambda grad, mask=mask: grad * mask)
                trainable.append(p)
    return trainable


def find_latest_checkpoint(runs_root: Path, style: str) -> Path | None:
    """Newest loadable ``last.pt`` among earlier runs of this style (for ``resume=auto``)."""
    candidates = sorted(
        runs_root.glob(f"{style}-*/checkpoints/last.pt"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for path in candidates:
        try:
            load_checkpoint(path)
            return path
        except CheckpointError as e:
            log.warning("resume=auto: skipping %s", e)
    return None


def _mean_terms(sums: torch.Tensor, n: int) -> dict[str, float]:
    values = (sums / max(n, 1)).tolist()
    return dict(zip(TERMS, values))


@torch.no_grad()
def validation_losses(
    model: torch.nn.Module, criterion: PerceptualLoss, photos: torch.Tensor, batch_size: int, style: int | None = None
) -> dict[str, float]:
    """Mean loss terms on fixed held-out photos, without gradients (over/under-fitting check).
    ``style``: the style index of a multi-style network."""
    sums = torch.zeros(len(TERMS), device=photos.device)
    for chunk in photos.split(batch_size):
        terms = criterion(model(chunk, style), chunk)
        sums += torch.stack([t.detach() for t in terms]) * len(chunk)
    return _mean_terms(sums, len(photos))


def load_finetune_base(cfg: TrainConfig) -> dict[str, Any]:
    """The multi-style checkpoint that ``cfg.finetune`` extends, checked before any other work."""
    base = load_checkpoint(cfg.finetune)
    old = [str(n) for n in base.get("styles", [])]
    if len(old) < 2 or int(base["model_config"].get("n_styles", 1)) != len(old):
        raise ConfigError(f"finetune={cfg.finetune}: not a multi-style checkpoint (train one with model=multistyle)")
    twice = [s.name for s in cfg.styles if s.name in old]
    if twice:
        raise ConfigError(f"finetune: {cfg.finetune} already holds style(s) {twice}; it holds: {', '.join(old)}")
    return base


# Test hook: when set, every rank writes its final weights to <dir>/rank<N>.pt (DDP replica check).
DUMP_WEIGHTS_ENV = "FAST_STYLE_DUMP_WEIGHTS"


def train(
    cfg: TrainConfig,
    logger: Any = None,
    on_log: Callable[[int, dict], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> TrainResult:
    """Train one style network (or one multi-style network); returns where the final checkpoint
    went and the loss history.

    ``on_start`` is called once every check has passed, just before the first step: a caller
    that prepared a run folder knows from it whether the run ever started (scripts/train.py
    removes the folder of a run refused before that).

    Under torchrun (``WORLD_SIZE`` > 1) this joins the process group (initialising it unless the
    caller did, and then destroying it at the end), trains data-parallel and returns the same
    result on every rank; ``logger`` and ``on_log`` are used on rank 0 only.
    """
    cfg.validate()
    ctx = distributed.setup(cfg.device, cfg.trainer.ddp_backend, cfg.data.batch_size)
    try:
        if ctx.enabled:
            # hydra names the run dir by the clock on each rank: rank 0's names win everywhere
            run_dir, run_name, ckpt_out = ctx.broadcast((cfg.run_dir, cfg.run_name, cfg.ckpt_out))
            cfg = replace(cfg, run_dir=run_dir, run_name=run_name, ckpt_out=ckpt_out)
            if not ctx.is_main:
                logger, on_log = NullLogger(), None
        result = _train(cfg, ctx, logger, on_log, on_start)
        ctx.barrier()  # rank 0's final checkpoint is on disk before any rank returns
        return result
    finally:
        ctx.close()


def _train(
    cfg: TrainConfig,
    ctx: distributed.Distributed,
    logger: Any,
    on_log: Callable[[int, dict], None] | None,
    on_start: Callable[[], None] | None = None,
) -> TrainResult:
    device = ctx.device
    main = ctx.is_main
    torch.manual_seed(cfg.seed)
    run_dir = Path(cfg.run_dir)
    ckpt_dir = run_dir / "checkpoints"
    label = style_label(cfg)
    ckpt_out = Path(cfg.ckpt_out or f"checkpoints/{label}.pt")

    # Everything that can fail on a user mistake happens before the first step.
    # Under DDP, files are read by rank 0 only (ctx.on_main) and what they hold is broadcast.
    def load_resume() -> tuple[Path, dict[str, Any]] | None:
        if not cfg.resume:
            return None
        path = find_latest_checkpoint(run_dir.parent, label) if cfg.resume == "auto" else Path(cfg.resume)
        if path is None:
            raise ConfigError(f"resume=auto: no checkpoint of style {label!r} under {run_dir.parent}")
        remove_stale_temps(path)  # a save killed mid-write (SIGKILL) left its temp file there
        state = load_checkpoint(path)
        if "optimizer" not in state:
            raise CheckpointError(f"{path}: holds no optimizer state; it cannot be resumed")
        return path, state

    resume_state = None
    resumed = ctx.on_main(load_resume)
    if resumed is not None:
        resume_path, resume_state = resumed
        if main:
            log.info("resuming from %s at step %d", resume_path, resume_state["step"])
    base = ctx.on_main(lambda: load_finetune_base(cfg)) if cfg.finetune else None
    old_names = [str(n) for n in base["styles"]] if base else []
    # The style images first: a missing one must not wait for a scan of 80k photos.
    targets = ctx.on_main(lambda: load_style_targets(cfg, first_index=len(old_names)))
    names = old_names + [t.config.name for t in targets]
    if len(names) > 1:
        label = "+".join(names)

    def identity(model_config: dict[str, Any]) -> dict[str, Any]:
        return network_identity(train_config_to_dict(cfg), model_config, label, cfg.loss_net.name)

    if resume_state is not None and cfg.resume_check:
        # Resuming another style or loss network would train on and save it under this run's
        # name: the user meant another checkpoint. Starting from its weights is resume_check=false.
        diffs = identity_differences(
            identity_of_state(resume_state), identity(resume_state["model_config"]), keys=("style", "styles", "loss_net")
        )
        if diffs:
            raise CheckpointError(
                f"resume: {resume_path} is another network than this run's ({'; '.join(diffs)}); resume the "
                "matching checkpoint, or pass resume_check=false to start from its weights anyway"
            )

    def scan_data():  # a photo folder (header scan) or a shard folder (data.shards / autodetected)
        source = resolve_training_data(cfg.data.root, cfg.data.image_size, cfg.data.scan, cfg.data.shards)
        for path, reason in source.report.bad:
            log.warning("skipping unreadable training image %s: %s", path, reason)
        # Before any model or GPU work: a mostly broken folder costs seconds, not hours.
        check_bad_fraction(len(source.report.bad), source.n_listed, cfg.data.max_bad_fraction)
        return source

    source = ctx.on_main(scan_data)
    dataset = open_training_data(source, cfg.data.image_size)
    bad_files: list[tuple[Path, str]] = list(source.report.bad)
    steps = cfg.trainer.steps
    if cfg.trainer.epochs is not None:
        steps = cfg.trainer.epochs * len(dataset) // cfg.data.batch_size
        if steps < 1:
            raise ConfigError(
                f"trainer.epochs={cfg.trainer.epochs} of {len(dataset)} images at batch {cfg.data.batch_size} is 0 "
                "steps, which would save an untrained network; raise trainer.epochs or use trainer.steps"
            )
    if resume_state is not None and int(resume_state["step"]) >= steps:
        raise ConfigError(
            f"resume: {resume_path} is already at step {int(resume_state['step'])}, and this run stops at "
            f"trainer.steps={steps}; raise trainer.steps to train further"
        )
    sample_photos = val_photos = None
    if main:
        preview_root = cfg.data.val_root or cfg.data.shards or cfg.data.root
        sample_photos = fixed_photos(preview_root, cfg.data.n_samples, cfg.data.image_size).to(device)
        val_photos = (
            fixed_photos(cfg.data.val_root, cfg.data.n_val, cfg.data.image_size).to(device)
            if cfg.data.val_root else None
        )

    if base is not None:
        model = extend_styles(model_from_checkpoint(base), len(targets)).to(device)
        params = prepare_finetune(model, n_old=len(old_names))
    else:
        n_styles = len(targets) if cfg.styles else 1
        model = ImageTransformNet(TransformerConfig(cfg.model.width, cfg.model.n_residual, n_styles)).to(device)
        params = list(model.parameters())
    model_config = model.config
    if not cfg.overwrite:  # before the loss network loads: a refused run costs seconds
        ctx.on_main(lambda: check_final_replacement(ckpt_out, identity(model_config.to_dict()), steps))
    build_criteria(targets, cfg, device)
    # fused Adam: one kernel for all parameters on CUDA (CPU keeps the default foreach path)
    lr = cfg.effective_lr()
    if cfg.trainer.lr_scaling != "none":
        log.info("lr %.3g: trainer.lr %.3g scaled (%s) for batch %d against trainer.lr_batch %d",
                 lr, cfg.trainer.lr, cfg.trainer.lr_scaling, cfg.data.batch_size, cfg.trainer.lr_batch)
    optimizer = torch.optim.Adam(params, lr=lr, fused=device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed training shapes: pick the fastest conv kernels once
    memory_format = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
    if cfg.trainer.channels_last:
        model.to(memory_format=torch.channels_last)
    step = 0
    good_ckpt: Path | None = None  # newest checkpoint known to hold finite weights (rollback target)
    if resume_state is not None:
        good_ckpt = resume_path
        if resume_state["model_config"] != model_config.to_dict():
            raise CheckpointError(
                f"resume: checkpoint model {resume_state['model_config']} differs from model config "
                f"{model_config.to_dict()}"
            )
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        step = int(resume_state["step"])
        torch.set_rng_state(resume_state["rng"]["cpu"])
        if device.type == "cuda" and resume_state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(resume_state["rng"]["cuda"], device)
    # DDP: gradients averaged over the processes after backward (each rank's loss is the mean
    # over its share of the global batch, so the average is the global batch's gradient).
    # Instance norm has no batch statistics, so nothing else needs synchronising.
    net: torch.nn.Module = model
    if ctx.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def loss_terms(photos: torch.Tensor, target: StyleTarget) -> Any:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.trainer.amp == "bf16"):
            return target.criterion(net(photos, target.index), photos)

    use_compile, compile_reason = decide_compile(
        cfg.trainer.compile, device, steps - step, cfg.data.batch_size, cfg.data.image_size, model.config.width
    )
    if main:
        log.info("%s", compile_reason)
    if use_compile:
        # one graph for transformer + loss network + loss terms; backward compiled with it
        loss_terms = torch.compile(loss_terms)

    def make_loader(start_step: int) -> Any:
        return build_loader(
            dataset,
            cfg.data.batch_size,
            seed=cfg.seed,
            start_step=start_step,
            workers=cfg.data.workers,
            pin_memory=cfg.data.pin_memory and device.type == "cuda",
            rank=ctx.rank,
            world_size=ctx.world_size,
        )

    loader = make_loader(step)
    if logger is None and not main:
        logger = NullLogger()
    if logger is None:
        logger = build_logger(
            cfg.logger.kind, server=cfg.logger.server, port=cfg.logger.port, env=cfg.logger.env or cfg.run_name
        )
    for t in targets:
        logger.log_image("style", t.image[0], caption=t.config.name)

    def state(at_step: int) -> dict[str, Any]:
        return {
            "model_config": model_config.to_dict(),
            "model": model.state_dict(),
            "style": label,
            **({"styles": list(names)} if len(names) > 1 else {}),
            "loss_net": cfg.loss_net.name,
            "step": at_step,
            "optimizer": optimizer.state_dict(),
            "rng": {
                "cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
            "config": train_config_to_dict(cfg),
        }

    def save_samples(at_step: int) -> None:
        if not main:
            return
        model.eval()
        with torch.no_grad():  # one row per style of the network
            rows = [model(sample_photos, i) for i in range(len(names))] if len(names) > 1 else [model(sample_photos)]
        model.train()
        grid = image_grid([sample_photos, *rows])
        save_image(grid, run_dir / "samples" / f"step_{at_step:06d}.png")
        logger.log_image("samples", grid, caption=f"step {at_step}")

    result = TrainResult(
        checkpoint=ckpt_out, step=step, bad_files=bad_files, rank=ctx.rank, world_size=ctx.world_size
    )
    reported_bad: set[Path] = {p for p, _ in bad_files}

    def report_new_bad_files() -> None:
        """List files that failed to decode (in any DataLoader worker) once, and stop when too many."""
        ctx.union_(dataset.bad_flags)  # DDP: every rank decodes its own share; all agree on the list
        for path in dataset.bad_files():
            if path not in reported_bad:
                reported_bad.add(path)
                bad_files.append((path, "could not be decoded"))
                if main:
                    log.warning("skipping unreadable training image %s: could not be decoded", path)
        check_bad_fraction(len(bad_files), dataset.n_listed, cfg.data.max_bad_fraction)

    def finite_weights() -> bool:
        return bool(torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all())

    def roll_back(at_step: int, why: str) -> int:
        """Reload the last good checkpoint with a lower lr; the step to continue from."""
        nonlocal data_iter, n_in_interval
        if good_ckpt is None:
            raise FastStyleError(
                f"{why} at step {at_step}, before any checkpoint was written, so there is nothing to roll "
                "back to; lower trainer.lr or the loss weights"
            )
        if result.rollbacks >= cfg.trainer.max_rollbacks:
            raise FastStyleError(
                f"{why} at step {at_step} after {result.rollbacks} rollback(s) (trainer.max_rollbacks="
                f"{cfg.trainer.max_rollbacks}, lr now {optimizer.param_groups[0]['lr']:.3g}); lower "
                f"trainer.lr or the loss weights; last good checkpoint: {good_ckpt}"
            )
        good = ctx.on_main(lambda: load_checkpoint(good_ckpt))
        lrs = [group["lr"] for group in optimizer.param_groups]  # lowered again on every rollback
        model.load_state_dict(good["model"])
        optimizer.load_state_dict(good["optimizer"])
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr * cfg.trainer.rollback_lr_factor
        torch.set_rng_state(good["rng"]["cpu"])
        if device.type == "cuda" and good["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(good["rng"]["cuda"], device)
        back_to = int(good["step"])
        result.rollbacks += 1
        result.history[:] = [h for h in result.history if h[0] <= back_to]
        result.val_history[:] = [h for h in result.val_history if h[0] <= back_to]
        if main:
            log.warning(
                "%s at step %d: rolled back to %s (step %d) with lr %.3g (rollback %d of %d)",
                why, at_step, good_ckpt, back_to, optimizer.param_groups[0]["lr"], result.rollbacks,
                cfg.trainer.max_rollbacks,
            )
        data_iter = iter(make_loader(back_to))
        sums.zero_()
        n_in_interval = 0
        return back_to
    if main:
        log.info(
            "training %s%s: %d images%s, %d steps, batch %d, %d px, loss net %s (%s), device %s, run dir %s",
            label, f" (fine-tuning {len(targets)} new style(s) into {cfg.finetune})" if base else "", len(dataset),
            " (shards)" if source.kind == "shards" else "", steps, cfg.data.batch_size, cfg.data.image_size,
            cfg.loss_net.name, cfg.loss_net.weights, device, run_dir,
        )
        if ctx.enabled:
            log.info(
                "distributed: %d processes (%s), %d images per process per step",
                ctx.world_size, torch.distributed.get_backend(), cfg.data.batch_size // ctx.world_size,
            )
    if on_start is not None:
        on_start()
    sums = torch.zeros(len(TERMS), device=device)
    n_in_interval = 0
    t_interval = time.perf_counter()
    model.train()
    data_iter = iter(loader)
    stopping = False  # a stop request seen by this process or (DDP) by any other
    compiled_once = False
    with StopRequest() as stop, tqdm(
        total=steps, initial=step, desc=label, unit="step", dynamic_ncols=True, disable=not main
    ) as bar:
        while step < steps and not stopping:
            photos = next(data_iter).to(device, non_blocking=True, memory_format=memory_format)
            target = targets[step % len(targets)]  # a pure function of the step: resume stays exact
            if use_compile and not compiled_once:
                t_compile = time.perf_counter()
                terms = loss_terms(photos, target)
                compiled_once = True
                if main:
                    log.info("torch.compile: first step (cold compile) took %.1f s", time.perf_counter() - t_compile)
            else:
                terms = loss_terms(photos, target)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            step += 1
            sums += torch.stack([t.detach() for t in terms])
            n_in_interval += 1
            bar.update(1)
            stopping = ctx.any(stop.requested)  # DDP: one CPU all-reduce, so all ranks stop together

            last = step == steps
            if step % cfg.trainer.log_every == 0 or last or stopping:
                ctx.mean_(sums)  # DDP: mean over the processes = the global batch's mean
                means = _mean_terms(sums, n_in_interval)  # the one host sync per interval
                elapsed = time.perf_counter() - t_interval
                if not all(math.isfinite(v) for v in means.values()):
                    save_samples(step)
                    step = roll_back(step, f"loss became non-finite ({means})")
                    bar.n = step
                    bar.refresh()
                    t_interval = time.perf_counter()
                    continue
                report_new_bad_files()
                ips = n_in_interval * cfg.data.batch_size / max(elapsed, 1e-9)
                result.history.append((step, means))
                bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()} | {"img/s": f"{ips:.1f}"})
                if main:
                    log.info(
                        "step %d  %s  img/s %.1f", step, "  ".join(f"{k} {v:.5g}" for k, v in means.items()), ips
                    )
                logger.log_losses(step, means, split="train")
                logger.log_scalar("lr", step, optimizer.param_groups[0]["lr"])
                logger.log_scalar("images_per_s", step, ips)
                if on_log is not None:
                    on_log(step, means)
                sums.zero_()
                n_in_interval = 0
                t_interval = time.perf_counter()
            if step % cfg.trainer.sample_every == 0 or last:
                save_samples(step)
            if main and val_photos is not None and (step % cfg.trainer.val_every == 0 or last):
                model.eval()
                per_style = [
                    validation_losses(model, t.criterion, val_photos, cfg.data.batch_size, t.index) for t in targets
                ]
                val = {k: sum(v[k] for v in per_style) / len(per_style) for k in TERMS}  # mean over styles
                model.train()
                result.val_history.append((step, val))
                log.info("val step %d  %s", step, "  ".join(f"{k} {v:.5g}" for k, v in val.items()))
                logger.log_losses(step, val, split="val")
            if step % cfg.trainer.ckpt_every == 0 and not last:
                # Never let a checkpoint capture diverged weights (the log interval may be longer
                # than the checkpoint interval): one host sync per checkpoint, which is rare.
                if not finite_weights():
                    step = roll_back(step, "weights became non-finite")
                    bar.n = step
                    bar.refresh()
                    continue
                good_ckpt = ckpt_dir / "last.pt"
                if main:
                    save_checkpoint(state(step), good_ckpt)

    result.step = step
    report_new_bad_files()
    if bad_files and main:
        log.warning(
            "%d of %d training image(s) were skipped as unreadable: %s", len(bad_files), dataset.n_listed,
            ", ".join(str(p) for p, _ in bad_files),
        )
    if stopping and step < steps:
        result.interrupted = True
        result.checkpoint = ckpt_dir / "last.pt"
        if main:
            save_checkpoint(state(step), result.checkpoint)
            log.warning("interrupted at step %d; checkpoint saved to %s", step, result.checkpoint)
    else:
        result.checkpoint = ckpt_out
        if main:
            save_checkpoint(state(step), ckpt_dir / "last.pt")
            if not cfg.overwrite:  # another run may have written there since the check at the start
                try:
                    check_final_replacement(ckpt_out, identity(model_config.to_dict()), step)
                except CheckpointError as e:
                    raise CheckpointError(f"{e}; this run's network is in {ckpt_dir / 'last.pt'}") from None
            save_checkpoint(state(step), ckpt_out)
            log.info("saved %s (step %d)", result.checkpoint, step)
    logger.close()
    if os.environ.get(DUMP_WEIGHTS_ENV):
        torch.save(model.state_dict(), Path(os.environ[DUMP_WEIGHTS_ENV]) / f"rank{ctx.rank}.pt")
    return result
