"""The training loop: a plain function over a :class:`TrainConfig`; no hydra in here.

Data flow per step: photos -> ImageTransformNet -> stylized batch -> PerceptualLoss (frozen VGG
features of output and input, style Grams computed once) -> Adam step. Host syncs (``.item()``)
happen only at log intervals, so the GPU is never stalled waiting for the CPU.

Multi-style (``cfg.styles``, conditional instance norm): step ``s`` trains style ``s % N`` with
that style's own PerceptualLoss (its Grams computed once; one shared loss network), so the style
order is a pure function of the step and resume stays exact. Samples show one row per style;
validation losses are the mean over the trained styles. ``cfg.finetune`` adds ``cfg.styles`` to a
trained multi-style checkpoint by training only the new styles' instance-norm rows.

This file holds setup, the step, validation and save/resume; each other concern is one call into
its own module: :mod:`fast_style.compile_policy` (``trainer.compile``), :mod:`fast_style.signals`
(stopping on SIGINT/SIGTERM), :mod:`fast_style.rollback` (recovering from a non-finite loss),
:mod:`fast_style.finetune` (``finetune=`` and ``init_from=``) and :mod:`fast_style.run_checks`
(where a run may write, what it may resume, when its final checkpoint may replace a file).

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm import tqdm

from fast_style import compile_policy, distributed, finetune, run_checks
from fast_style.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from fast_style.config import StyleConfig, TrainConfig, style_label, train_config_to_dict
from fast_style.data import build_loader, check_bad_fraction, fixed_photos, open_training_data, resolve_training_data
from fast_style.device import decide_amp
from fast_style.errors import CheckpointError, ConfigError
from fast_style.fileio import remove_stale_temps
from fast_style.images import image_grid, save_image
from fast_style.loggers import NullLogger
from fast_style.losses import TERMS, LossTerms, PerceptualLoss, terms_dict
from fast_style.models import ImageTransformNet, TransformerConfig, build_loss_net
from fast_style.models.transformer import OUTPUT_SCALE, extend_styles
from fast_style.rollback import finite_weights, roll_back
from fast_style.signals import StopRequest
from fast_style.styles import load_style_tensor, match_training_colors, resolve_style_image

log = logging.getLogger(__name__)

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
    # style.preserve_color=histogram: the training photos' colours (no-op when off)
    match_training_colors(targets, cfg.style.preserve_color, cfg.data.shards or cfg.data.root, cfg.seed)
    return targets


N_REFERENCE = 16  # training photos whose distance to each painting normalises its style layers


def reference_photos(dataset: Any, device: torch.device) -> torch.Tensor:
    """``N_REFERENCE`` training crops spread evenly over the dataset (deterministic, so a resumed
    run measures the same normalisers): what "an unchanged photo" means to the style loss."""
    n = min(N_REFERENCE, len(dataset))
    return torch.stack([dataset[i * len(dataset) // n] for i in range(n)]).to(device)


def build_criteria(targets: list[StyleTarget], cfg: TrainConfig, device: torch.device, reference: torch.Tensor) -> None:
    """One PerceptualLoss per style, all sharing one loss network. A single style uses ``cfg.loss``
    as is; in a multi-style run each style takes its own style and tv weight (its configs/style file).
    ``reference``: training photos that normalise every style layer (PerceptualLoss)."""
    layers = cfg.loss.for_loss_net(cfg.loss_net.name).layers
    loss_net = build_loss_net(cfg.loss_net.name, cfg.loss_net.weights, layers, seed=cfg.seed).to(device)
    for t in targets:
        loss_cfg = cfg.loss
        if t.index is not None:
            loss_cfg = replace(
                cfg.loss, style_weight=t.config.style_weight, tv_weight=t.config.tv_weight
            )
        t.criterion = PerceptualLoss(loss_net, t.image.to(device), loss_cfg, reference=reference)


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
    return terms_dict(sums / max(len(photos), 1))


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
    on_start: Callable[[], None] | None,
) -> TrainResult:
    """The loop: batch -> step -> meter -> log (or roll back) -> samples -> validation -> checkpoint."""
    run, state, result, good_ckpt = setup(cfg, ctx, logger, on_log)
    if on_start is not None:
        on_start()
    every = cfg.trainer
    meter = LossMeter(run.device)
    batches = iter(make_loader(run, state.step))
    stopping = False  # a stop request seen by this process or (DDP) by any other
    state.model.train()
    with StopRequest() as stop, tqdm(
        total=run.steps, initial=state.step, desc=run.label, unit="step", dynamic_ncols=True, disable=not run.main
    ) as bar:
        while state.step < run.steps and not stopping:
            photos = next(batches).to(run.device, non_blocking=True, memory_format=run.memory_format)
            meter.add(train_step(run, state, photos))
            bar.update(1)
            stopping = ctx.any(stop.requested)  # DDP: one CPU all-reduce, so all ranks stop together
            step, last = state.step, state.step == run.steps

            if step % every.log_every == 0 or last or stopping:
                means, images_per_s = meter.read(ctx, cfg.data.batch_size)  # the one host sync per interval
                meter.reset()
                if not all(math.isfinite(v) for v in means.values()):
                    save_samples(run, state.model, step)  # what the diverged network made, for the post-mortem
                    roll_back(state, result, good_ckpt, cfg.trainer, ctx, f"loss became non-finite ({means})", bar)
                    batches = iter(make_loader(run, state.step))
                    continue
                report_new_bad_files(run, result)
                log_progress(run, state, result, means, images_per_s, bar)
            if step % every.sample_every == 0 or last:
                save_samples(run, state.model, step)
            if run.val_photos is not None and (step % every.val_every == 0 or last):
                validate(run, state.model, step, result)
            if step % every.ckpt_every == 0 and not last:
                # Never let a checkpoint capture diverged weights (the log interval may be longer
                # than the checkpoint interval): one host sync per checkpoint, which is rare.
                if not finite_weights(state.model):
                    roll_back(state, result, good_ckpt, cfg.trainer, ctx, "weights became non-finite", bar)
                    batches = iter(make_loader(run, state.step))
                    meter.reset()
                    continue
                good_ckpt = save_last(run, state)
    return finish(run, state, result, stopped=stopping)


# --- the state a checkpoint holds, and what a run fixes before its first step ---------------------


@dataclass
class TrainState:
    """What changes from step to step: the network, Adam's state, the step and the random state.

    A checkpoint holds ``state_dict()`` (next to what names the network, see
    :func:`checkpoint_state`); resume and rollback both go through ``load_state_dict``, so the
    three cannot disagree about what continuing a run means."""

    model: ImageTransformNet
    optimizer: torch.optim.Optimizer
    device: torch.device
    step: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "rng": {
                "cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        torch.set_rng_state(state["rng"]["cpu"])
        if self.device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)


@dataclass
class Run:
    """What :func:`setup` fixes before the first step and the loop only reads."""

    cfg: TrainConfig
    ctx: distributed.Distributed
    label: str  # the network's name: its style, or its styles joined by +
    names: list[str]  # every style of the network, in norm-row order (fine-tune: old ones first)
    targets: list[StyleTarget]  # the styles this run trains
    dataset: Any  # PhotoFolder or ShardDataset
    steps: int
    ckpt_out: Path
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper: what a step runs
    loss_fn: Callable[..., LossTerms]  # forward_loss, compiled or not (compile_policy.loss_function)
    logger: Any
    on_log: Callable[[int, dict], None] | None
    sample_photos: torch.Tensor | None  # rank 0 only
    val_photos: torch.Tensor | None  # rank 0 only, with data.val_root
    amp: bool = False  # bf16 autocast (trainer.amp, decided once: fast_style.device.decide_amp)

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    @property
    def main(self) -> bool:
        return self.ctx.is_main

    @property
    def last_ckpt(self) -> Path:
        return Path(self.cfg.run_dir) / "checkpoints" / "last.pt"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.cfg.trainer.channels_last else torch.contiguous_format


def checkpoint_state(run: Run, state: TrainState) -> dict[str, Any]:
    """A checkpoint (format in docs/ARCHITECTURE.md): the TrainState plus what names the network."""
    return {
        "model_config": state.model.config.to_dict(),
        "style": run.label,
        **({"styles": list(run.names)} if len(run.names) > 1 else {}),
        "loss_net": run.cfg.loss_net.name,
        **state.state_dict(),
        "config": train_config_to_dict(run.cfg),
    }


# --- setup: everything that can fail on a user mistake happens before the first step -----------


def setup(
    cfg: TrainConfig, ctx: distributed.Distributed, logger: Any, on_log: Callable[[int, dict], None] | None
) -> tuple[Run, TrainState, TrainResult, Path | None]:
    """Check, load and build everything, cheapest checks first, so a mistake costs seconds:
    resume/finetune checkpoints, style images, the data scan, the step count, the final
    checkpoint's replacement, then the loss network. Under DDP, files are read by rank 0 only
    (``ctx.on_main``) and what they hold is broadcast. Returns the run, its state, the result to
    fill in and the rollback target (the resumed checkpoint, if any)."""
    torch.manual_seed(cfg.seed)  # the network's initial weights
    device, main = ctx.device, ctx.is_main
    resumed = ctx.on_main(lambda: read_resume_checkpoint(cfg))
    if resumed is not None and main:
        log.info("resuming from %s at step %d", resumed.path, resumed.state["step"])
    base = ctx.on_main(lambda: finetune.load_finetune_base(cfg)) if cfg.finetune else None
    start = ctx.on_main(lambda: finetune.load_initial_weights(cfg)) if cfg.init_from and resumed is None else None
    old_names = [str(n) for n in base["styles"]] if base else []
    # The style images first: a missing one must not wait for a scan of 80k photos.
    targets = ctx.on_main(lambda: load_style_targets(cfg, first_index=len(old_names)))
    names = old_names + [t.config.name for t in targets]
    label = style_label(cfg.style.name, names)
    if resumed is not None and cfg.resume_check:
        run_checks.check_resume_identity(cfg, label, resumed.path, resumed.state)
    source = ctx.on_main(lambda: scan_data(cfg))
    dataset = open_training_data(source, cfg.data.image_size)
    steps = count_steps(cfg, len(dataset), resumed)
    sample_photos, val_photos = preview_photos(cfg, device) if main else (None, None)
    model, params = build_model(cfg, base, len(old_names), len(targets), device)
    ckpt_out = Path(cfg.ckpt_out or f"checkpoints/{style_label(cfg.style.name, cfg.styles)}.pt")
    # before the loss network loads: a refused run costs seconds
    ctx.on_main(lambda: run_checks.check_outputs(cfg, label, model.config.to_dict(), ckpt_out, steps))
    build_criteria(targets, cfg, device, reference_photos(dataset, device))
    if start is not None:
        finetune.apply_initial_weights(cfg, start, model)
    state = TrainState(model, build_optimizer(cfg, model, params, device), device)
    if resumed is not None:
        run_checks.check_resumed_model(resumed.path, resumed.state, model.config.to_dict())
        state.load_state_dict(resumed.state)
    net = data_parallel(model, ctx)
    amp, why = decide_amp(cfg.trainer.amp, device)
    if main:
        log.info("%s", why)
    run = Run(
        cfg=cfg, ctx=ctx, label=label, names=names, targets=targets, dataset=dataset, steps=steps,
        ckpt_out=ckpt_out, net=net,
        loss_fn=compile_policy.loss_function(forward_loss, cfg, device, steps - state.step, model.config.width, main),
        logger=choose_logger(cfg, ctx, logger), on_log=on_log if main else None,
        sample_photos=sample_photos, val_photos=val_photos, amp=amp,
    )
    for t in targets:
        run.logger.log_image("style", t.image[0], caption=t.config.name)
    log_start(run, shards=source.kind == "shards")
    result = TrainResult(checkpoint=ckpt_out, step=state.step, bad_files=list(source.report.bad),
                         rank=ctx.rank, world_size=ctx.world_size)
    return run, state, result, resumed.path if resumed is not None else None


class Resumed(NamedTuple):
    """The checkpoint a run resumes: where it is (the first rollback target) and what it holds."""

    path: Path
    state: dict[str, Any]


def read_resume_checkpoint(cfg: TrainConfig) -> Resumed | None:
    """The checkpoint of ``cfg.resume`` (``auto``: the newest last.pt of this style), or None."""
    if not cfg.resume:
        return None
    label, runs_root = style_label(cfg.style.name, cfg.styles), Path(cfg.run_dir).parent
    path = find_latest_checkpoint(runs_root, label) if cfg.resume == "auto" else Path(cfg.resume)
    if path is None:
        raise ConfigError(f"resume=auto: no checkpoint of style {label!r} under {runs_root}")
    remove_stale_temps(path)  # a save killed mid-write (SIGKILL) left its temp file there
    state = load_checkpoint(path)
    if "optimizer" not in state:
        raise CheckpointError(f"{path}: holds no optimizer state; it cannot be resumed")
    return Resumed(path, state)


def scan_data(cfg: TrainConfig) -> Any:
    """The training data: a photo folder (header scan) or a shard folder (data.shards / autodetected)."""
    source = resolve_training_data(cfg.data.root, cfg.data.image_size, cfg.data.scan, cfg.data.shards)
    for path, reason in source.report.bad:
        log.warning("skipping unreadable training image %s: %s", path, reason)
    # Before any model or GPU work: a mostly broken folder costs seconds, not hours.
    check_bad_fraction(len(source.report.bad), source.n_listed, cfg.data.max_bad_fraction)
    return source


def count_steps(cfg: TrainConfig, n_images: int, resumed: Resumed | None) -> int:
    """The run's last step: ``trainer.steps``, or ``trainer.epochs`` over the data."""
    steps = cfg.trainer.steps
    if cfg.trainer.epochs is not None:
        steps = cfg.trainer.epochs * n_images // cfg.data.batch_size
        if steps < 1:
            raise ConfigError(
                f"trainer.epochs={cfg.trainer.epochs} of {n_images} images at batch {cfg.data.batch_size} is 0 "
                "steps, which would save an untrained network; raise trainer.epochs or use trainer.steps"
            )
    if resumed is not None and int(resumed.state["step"]) >= steps:
        raise ConfigError(
            f"resume: {resumed.path} is already at step {int(resumed.state['step'])}, and this run stops at "
            f"trainer.steps={steps}; raise trainer.steps to train further"
        )
    return steps


def preview_photos(cfg: TrainConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed photos of the sample grids, and the validation photos (None without data.val_root)."""
    preview_root = cfg.data.val_root or cfg.data.shards or cfg.data.root
    samples = fixed_photos(preview_root, cfg.data.n_samples, cfg.data.image_size).to(device)
    if not cfg.data.val_root:
        return samples, None
    return samples, fixed_photos(cfg.data.val_root, cfg.data.n_val, cfg.data.image_size).to(device)


def build_model(
    cfg: TrainConfig, base: dict[str, Any] | None, n_old: int, n_new: int, device: torch.device
) -> tuple[ImageTransformNet, list[torch.nn.Parameter]]:
    """A fresh network (seeded by the caller), or ``base`` extended by the new styles' norm rows
    (fine-tune: only those are trained); returns it with the parameters to optimise."""
    if base is not None:
        model = extend_styles(model_from_checkpoint(base), n_new).to(device)
        params = finetune.prepare_finetune(model, n_old=n_old)
    else:
        n_styles = n_new if cfg.styles else 1
        model = ImageTransformNet(TransformerConfig(cfg.model.width, cfg.model.n_residual, n_styles)).to(device)
        params = list(model.parameters())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed training shapes: pick the fastest conv kernels once
    if cfg.trainer.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, params


def data_parallel(model: ImageTransformNet, ctx: distributed.Distributed) -> torch.nn.Module:
    """What a step runs: the model, or under DDP its DistributedDataParallel wrapper, which
    averages the gradients over the processes after backward (each rank's loss is the mean over
    its share of the global batch, so the average is the global batch's gradient). Instance norm
    has no batch statistics, so nothing else needs synchronising."""
    if not ctx.enabled:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def build_optimizer(
    cfg: TrainConfig, model: ImageTransformNet, params: list[torch.nn.Parameter], device: torch.device
) -> torch.optim.Adam:
    """Adam at trainer.lr (the output conv's group at lr * OUTPUT_SCALE)."""
    lr = cfg.trainer.lr
    # fused Adam: one kernel for all parameters on CUDA (CPU keeps the default foreach path)
    # The output conv steps at lr * OUTPUT_SCALE: Adam moves every weight by ~lr whatever its
    # gradient, and this conv writes pixels directly, so at the full lr one step can swing a pixel
    # by a sizeable part of [0, 1] (the network thrashed in colour fringes). Johnson et al.'s and
    # pytorch/examples' networks paint in 0-255 units, where the same lr is 255x gentler there:
    # this is that network, on [0, 1] images (docs/QUALITY.md has the measurements).
    out = {id(p) for p in model.output_parameters()}
    groups = [{"params": [p for p in params if id(p) not in out]},
              {"params": [p for p in params if id(p) in out], "lr": lr * OUTPUT_SCALE}]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=lr, fused=device.type == "cuda")


def forward_loss(net: torch.nn.Module, target: StyleTarget, photos: torch.Tensor, amp: bool) -> LossTerms:
    """A step's forward pass: the network on the photos, then the loss terms of its output."""
    with torch.autocast(photos.device.type, dtype=torch.bfloat16, enabled=amp):
        return target.criterion(net(photos, target.index), photos)


def choose_logger(cfg: TrainConfig, ctx: distributed.Distributed, logger: Any) -> Any:
    """The caller's logger, else the configured one, on rank 0; other ranks log nothing."""
    if not ctx.is_main:
        return NullLogger()
    if logger is not None:
        return logger
    from fast_style.dashboard import build_logger  # the extra the logger.kind option selects (test_layering)

    return build_logger(cfg.logger.kind, server=cfg.logger.server, port=cfg.logger.port,
                        env=cfg.logger.env or cfg.run_name)


def log_start(run: Run, shards: bool) -> None:
    if not run.main:
        return
    cfg = run.cfg
    log.info(
        "training %s%s: %d images%s, %d steps, batch %d, %d px, loss net %s (%s), device %s, run dir %s",
        run.label, f" (fine-tuning {len(run.targets)} new style(s) into {cfg.finetune})" if cfg.finetune else "",
        len(run.dataset), " (shards)" if shards else "", run.steps, cfg.data.batch_size, cfg.data.image_size,
        cfg.loss_net.name, cfg.loss_net.weights, run.device, cfg.run_dir,
    )
    url, env = getattr(run.logger, "url", None), getattr(run.logger, "env", None)
    if url and env:  # said once, on the console and in train.log: where to look
        log.info("dashboard: %s/env/%s (env %s; start the server with python scripts/dashboard.py)", url, env, env)
    if run.ctx.enabled:
        log.info(
            "distributed: %d processes (%s), %d images per process per step",
            run.ctx.world_size, torch.distributed.get_backend(), cfg.data.batch_size // run.ctx.world_size,
        )


def make_loader(run: Run, start_step: int) -> Any:
    """Batches from ``start_step`` on: the data order is a pure function of (seed, position)."""
    return build_loader(
        run.dataset,
        run.cfg.data.batch_size,
        seed=run.cfg.seed,
        start_step=start_step,
        workers=run.cfg.data.workers,
        pin_memory=run.cfg.data.pin_memory and run.device.type == "cuda",
        rank=run.ctx.rank,
        world_size=run.ctx.world_size,
    )


# --- the pieces of the loop, in the order it calls them ----------------------------------------


def train_step(run: Run, state: TrainState, photos: torch.Tensor) -> LossTerms:
    """One Adam step. The style it trains is a pure function of the step, so resume stays exact."""
    target = run.targets[state.step % len(run.targets)]
    terms = run.loss_fn(run.net, target, photos, run.amp)
    state.optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    schedule_lr(state.optimizer, run.cfg.trainer.lr_schedule, state.step, run.steps)
    state.optimizer.step()
    state.step += 1
    return terms


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """``trainer.lr_schedule``'s multiple of trainer.lr for 0-based ``step`` of ``steps``:
    constant 1; cosine 0.5 (1 + cos(pi step / steps)), from 1 at the first step towards 0 at
    the last (never 0 at a step taken, since ``step`` < ``steps``)."""
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / steps))
    return 1.0


def schedule_lr(optimizer: torch.optim.Optimizer, schedule: str, step: int, steps: int) -> None:
    """Move every group's lr from step ``step - 1``'s factor to ``step``'s (lr x f(step) / f(step - 1)).

    Scaling the current lr instead of setting trainer.lr x f(step) keeps what else decided the
    lr: the output conv's own group (build_optimizer), a rollback's lowered lr, and on resume the
    lr the checkpoint's optimizer state holds, so a resumed run continues the same sequence."""
    if step == 0 or schedule == "constant":
        return
    ratio = lr_factor(schedule, step, steps) / lr_factor(schedule, step - 1, steps)
    for group in optimizer.param_groups:
        group["lr"] *= ratio


class LossMeter:
    """The loss terms summed over one log interval on the device, so steps never wait for the
    host; ``read`` is the one host sync per interval."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(len(TERMS), device=device)
        self.reset()

    def reset(self) -> None:
        self.sums.zero_()
        self.count = 0
        self.started = time.perf_counter()

    def add(self, terms: LossTerms) -> None:
        self.sums += torch.stack([t.detach() for t in terms])
        self.count += 1

    def read(self, ctx: distributed.Distributed, batch_size: int) -> tuple[dict[str, float], float]:
        """(mean of each term, images per second) over the interval; under DDP the mean over the
        processes too, i.e. the global batch's mean."""
        ctx.mean_(self.sums)
        means = terms_dict(self.sums / max(self.count, 1))
        elapsed = time.perf_counter() - self.started
        return means, self.count * batch_size / max(elapsed, 1e-9)


def report_new_bad_files(run: Run, result: TrainResult) -> None:
    """List files that failed to decode (in any DataLoader worker) once, and stop when too many."""
    run.ctx.union_(run.dataset.bad_flags)  # DDP: every rank decodes its own share; all agree on the list
    known = {path for path, _ in result.bad_files}
    for path in run.dataset.bad_files():
        if path not in known:
            known.add(path)
            result.bad_files.append((path, "could not be decoded"))
            if run.main:
                log.warning("skipping unreadable training image %s: could not be decoded", path)
    check_bad_fraction(len(result.bad_files), run.dataset.n_listed, run.cfg.data.max_bad_fraction)


def log_progress(
    run: Run, state: TrainState, result: TrainResult, means: dict[str, float], images_per_s: float, bar: tqdm
) -> None:
    """One log interval's mean losses to the history, the progress bar, train.log, the dashboard
    and ``on_log``."""
    step = state.step
    result.history.append((step, means))
    bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()} | {"img/s": f"{images_per_s:.1f}"})
    if run.main:
        log.info("step %d  %s  img/s %.1f", step, "  ".join(f"{k} {v:.5g}" for k, v in means.items()), images_per_s)
    run.logger.log_losses(step, means, split="train")
    run.logger.log_scalar("lr", step, state.optimizer.param_groups[0]["lr"])
    run.logger.log_scalar("images_per_s", step, images_per_s)
    if run.on_log is not None:
        run.on_log(step, means)


def save_samples(run: Run, model: ImageTransformNet, step: int) -> None:
    """The fixed photos and the network's output for each of its styles, as one grid (rank 0)."""
    if not run.main:
        return
    model.eval()
    with torch.no_grad():  # one row per style of the network
        photos = run.sample_photos
        rows = [model(photos, i) for i in range(len(run.names))] if len(run.names) > 1 else [model(photos)]
    model.train()
    grid = image_grid([photos, *rows])
    save_image(grid, Path(run.cfg.run_dir) / "samples" / f"step_{step:06d}.png")
    run.logger.log_image("samples", grid, caption=f"step {step}")


def validate(run: Run, model: ImageTransformNet, step: int, result: TrainResult) -> None:
    """Validation losses on the fixed held-out photos (rank 0): the mean over the trained styles."""
    model.eval()
    per_style = [
        validation_losses(model, t.criterion, run.val_photos, run.cfg.data.batch_size, t.index) for t in run.targets
    ]
    val = {k: sum(v[k] for v in per_style) / len(per_style) for k in TERMS}
    model.train()
    result.val_history.append((step, val))
    log.info("val step %d  %s", step, "  ".join(f"{k} {v:.5g}" for k, v in val.items()))
    run.logger.log_losses(step, val, split="val")


def save_last(run: Run, state: TrainState) -> Path:
    """``run_dir/checkpoints/last.pt`` (written by rank 0); every rank gets its path."""
    if run.main:
        save_checkpoint(checkpoint_state(run, state), run.last_ckpt)
    return run.last_ckpt


def finish(run: Run, state: TrainState, result: TrainResult, stopped: bool) -> TrainResult:
    """After the last step or a stop request: report skipped files, checkpoint, close the logger."""
    result.step = state.step
    report_new_bad_files(run, result)
    if result.bad_files and run.main:
        log.warning(
            "%d of %d training image(s) were skipped as unreadable: %s", len(result.bad_files),
            run.dataset.n_listed, ", ".join(str(p) for p, _ in result.bad_files),
        )
    if stopped and state.step < run.steps:
        result.interrupted = True
        result.checkpoint = save_last(run, state)
        if run.main:
            log.warning("interrupted at step %d; checkpoint saved to %s", state.step, result.checkpoint)
    else:
        result.checkpoint = run.ckpt_out
        if run.main:
            save_final(run, state)
    run.logger.close()
    return result


def save_final(run: Run, state: TrainState) -> None:
    """last.pt, then ``ckpt_out`` unless another run wrote a different or further-trained network
    there since the check at the start (``overwrite=true`` skips the check)."""
    last = save_last(run, state)
    run_checks.check_final_checkpoint(run.cfg, run.label, state.model.config.to_dict(), run.ckpt_out, state.step,
                                      saved_in=last)
    save_checkpoint(checkpoint_state(run, state), run.ckpt_out)
    log.info("saved %s (step %d)", run.ckpt_out, state.step)
