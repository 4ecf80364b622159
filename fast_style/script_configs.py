"""The options of every script in scripts/: one dataclass each, the only place their defaults live.

:func:`register_configs` stores them in hydra's ConfigStore; each ``configs/<script>.yaml`` holds
only a defaults list (this schema, then the presets it picks: ``style``, ``loss_net``, ...) and
hydra's own settings. Typed fields are checked while hydra composes the config: ``scale=abc`` or
``port=abc`` is an OmegaConf validation error, which :func:`fast_style.cli.run_hydra_main` turns
into one ``error:`` line and exit code 2, like an unknown key. Values with more than one form
(``batch_size``: an integer or ``auto``) are typed ``Any`` and checked by the library function
that takes them.

Training's options are :class:`fast_style.config.TrainConfig`'s (the library's dataclasses);
:func:`train_schema` adds the few that exist on the command line only (:class:`TrainCommandLine`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, List, Optional

from fast_style.config import DataConfig, LossNetConfig, StyleConfig, TrainConfig
from fast_style.losses import GATYS_CONTENT_LAYER, GATYS_STYLE_LAYERS


@dataclass
class StylizeConfig:
    """``python scripts/stylize.py ckpt=checkpoints/starry_night.pt input=photo.jpg [output=out.png]``"""

    ckpt: Optional[str] = None  # a fast-style checkpoint (.pt) or a shipped name; the model config comes from it
    input: Optional[str] = None  # an image file, a folder (searched recursively) or a video
    output: Optional[str] = None  # file or folder; default stylized/<name>_<style>.png
    scale: float = 1.0  # resize factor applied before stylizing
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # images per forward pass (folders: equal sizes; video frames); auto = 1 on CPU (faster there), 8 on CUDA
    batch_size: Any = "auto"
    workers: Any = "auto"  # folders: processes decoding ahead of the network; auto = 0 on CPU, up to 4 on CUDA
    # e.g. 1024: images with a longer side run in ~1024 px tiles, same output as one pass
    # (whole-image norm statistics), memory set by the tile; null = whole image
    tile_size: Optional[int] = None
    # output pixels per image (after scale): auto = 16 MP whole-image, 180 MP with tile_size
    # (~11-18 GB); larger is refused in one line before anything is decoded
    max_pixels: Any = "auto"
    # auto | torch | onnxruntime: auto = torch on CUDA; on a CPU the path this machine measured
    # fastest (ONNX Runtime, exported once per checkpoint into ~/.cache/fast_style/onnx, or torch
    # bf16 where the CPU has bf16 units); speeds: docs/PERFORMANCE.md
    backend: str = "auto"
    # fp32 | int8: int8 = static int8 ONNX Runtime graph (faster on CPU once warm; fine texture
    # changes visibly: docs/PERFORMANCE.md); needs backend auto/onnxruntime
    precision: str = "fp32"
    # torch.compile the network: faster per image after a compile per image size (folders, video;
    # docs/PERFORMANCE.md); false for a single photo
    compile: bool = False
    strength: float = 1.0  # 0..1: blend between the photo (0) and the full stylization (1)
    preserve_color: Optional[str] = None  # luminance | histogram: keep the photo's colours
    # multi-style checkpoints: which style, by name; `style=<name>` on the command line
    # (cli.style_argument renames it: configs/style/ is a config group, so hydra would not)
    style_name: Optional[str] = None
    # multi-style checkpoints: {starry_night: 0.7, the_scream: 0.3}; relative weights (divided by
    # their sum); checked by the Stylizer (a typed Dict breaks OmegaConf merges)
    style_mix: Any = None
    temporal_smoothing: float = 0.0  # video: 0..1, EMA of instance-norm statistics across frames (de-flicker)
    verbose: bool = False  # true: full tracebacks instead of one-line errors


@dataclass
class ExportConfig:
    """``python scripts/export.py ckpt=checkpoints/candy.pt format=onnx output=candy.onnx``"""

    ckpt: Optional[str] = None  # a fast-style checkpoint
    format: str = "onnx"  # onnx | torchscript
    output: Optional[str] = None  # default: next to the checkpoint (.onnx / .ts.pt)
    overwrite: bool = False  # replace a trained checkpoint at output= (checkpoint.check_output_file)
    verbose: bool = False


@dataclass
class DashboardConfig:
    """``python scripts/dashboard.py [host=127.0.0.1] [port=8097] [env_path=runs/visdom]``

    Keep 127.0.0.1 and use ``ssh -L 8097:localhost:8097 host`` from your laptop; any other host
    makes visdom listen on every interface (pass extra_args=[-enable_login] on shared machines)."""

    host: str = "127.0.0.1"
    port: int = 8097
    env_path: Optional[str] = "runs/visdom"  # where visdom saves envs (one JSON per run) on "save" in the UI
    extra_args: List[str] = field(default_factory=list)  # extra visdom.server flags: [-enable_login], [-readonly]
    verbose: bool = False


@dataclass
class ConvertConfig:
    """``python scripts/convert.py input=old.pth output=checkpoints/x.pt style=name``: a pytorch/examples
    fast_neural_style TransformerNet state_dict (.pth/.model) -> a fast-style checkpoint."""

    input: Optional[str] = None  # classic state_dict file
    output: Optional[str] = None  # fast-style checkpoint to write; default checkpoints/<style>.pt
    # `style=` on the command line: the style name stored in the checkpoint (stylize names outputs
    # after it); default: the input file's stem
    style_name: Optional[str] = None
    overwrite: bool = False  # true: output may replace a trained checkpoint (never a shipped network)
    verbose: bool = False


@dataclass
class EvaluateConfig:
    """``python scripts/evaluate.py ckpt=checkpoints/starry_night.pt photos=../shared/data/photos_val n=8``

    Measures the checkpoint's stylizations and Gatys L-BFGS runs under the checkpoint's own loss on
    vgg19_caffe (its style image, size, layers and weights), and both with the independent measure."""

    ckpt: Optional[str] = None  # a fast-style checkpoint (.pt)
    photos: Optional[str] = None  # folder of photos (or one file)
    n: int = 8  # first n photos (sorted)
    size: int = 256  # long side of each photo (px)
    iters: List[int] = field(default_factory=lambda: [50, 100, 300])  # L-BFGS iterations to report (one run)
    # L-BFGS start: noise (Gatys et al., Johnson et al.'s baseline) or content (the photo; stricter)
    init: str = "noise"
    seed: int = 0  # the white noise of init=noise
    style_image: Optional[str] = None  # default: the checkpoint's config style.image (else the named style's cache/url)
    out_dir: Optional[str] = None  # default eval/<YYYYmmdd-HHMMSS>
    device: str = "auto"
    verbose: bool = False


# Gatys' style weight per loss network. His layers' features are larger than Johnson's relu2_2
# (mean squared relu4_2 ~8.5x relu2_2 on photos_val) and their Grams differ (Gatys-layer style MSE
# ~1.5x Johnson's for starry_night on photos_val), so the weights are rescaled from the training
# ones to keep the same content/style balance at the start. vgg16/vgg19: scaled like the raw-MSE
# recipe's vgg16/vgg19_caffe ratio; not tuned.
GATYS_STYLE_WEIGHTS = {"vgg19_caffe": 6.5e6, "vgg16": 6.5e9, "vgg19": 6.5e9}


@dataclass
class GatysLossConfig:
    """The loss of ``scripts/optimize.py``: :class:`fast_style.losses.LossConfig`'s fields with Gatys
    et al.'s layers (VGG19; Caffe's in-place ReLU makes his "conv4_2" relu4_2) and raw-MSE weights
    (tuned before the normalised training recipe)."""

    normalize: bool = False
    content_layer: Optional[str] = GATYS_CONTENT_LAYER
    style_layers: Optional[List[str]] = field(default_factory=lambda: list(GATYS_STYLE_LAYERS))
    style_layer_weights: Optional[List[float]] = None  # one per style layer; null = all 1
    content_weight: float = 1.0e4
    style_weight: Optional[float] = None  # null: GATYS_STYLE_WEIGHTS of the loss network
    tv_weight: float = 0.0


@dataclass
class OptimizeConfig:
    """Gatys et al. optimisation: ``python scripts/optimize.py style=starry_night input=photo.jpg``.

    Picks from the style/ and loss_net/ groups that training uses (configs/optimize.yaml)."""

    input: Optional[str] = None  # the content photo
    output: Optional[str] = None  # default optimized/<name>_<style>.png
    size: int = 256  # long side of the output (px) when scales is null
    scales: Optional[List[int]] = None  # coarse-to-fine long sides, e.g. [256,512]: max_iter iterations at each
    max_iter: int = 300  # L-BFGS iterations (Adam steps) per scale
    optimizer: str = "lbfgs"  # lbfgs (strong-Wolfe line search) | adam
    lr: Optional[float] = None  # null: 1.0 for L-BFGS, 0.02 for Adam
    # null: automatic (mean |dloss/dpixel| = 1 at the start); see fast_style/optimize.py
    loss_scale: Optional[float] = None
    init: str = "content"  # content | noise | path to a fast-style checkpoint (start from its output)
    # histogram: style image recoloured with the photo's colours first; luminance: optimise the
    # luminance only, then the photo's chroma (Gatys et al. 2016)
    preserve_color: Optional[str] = None
    save_every: int = 0  # >0: write the iterate every K iterations next to the output (<stem>_<size>px_iter0050.png)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0  # noise init
    verbose: bool = False
    style: StyleConfig = field(default_factory=StyleConfig)
    loss_net: LossNetConfig = field(default_factory=lambda: LossNetConfig(name="vgg19_caffe"))
    loss: GatysLossConfig = field(default_factory=GatysLossConfig)


@dataclass
class PreprocessConfig:
    """``python scripts/preprocess.py data.root=/data/coco/train2014 out=/data/coco/shards256 data.image_size=256``

    Decodes every photo once into pre-resized uint8 shards (fast_style/shards.py); then train with
    data.root=<out> (autodetected) or data.shards=<out>, at the same data.image_size."""

    out: Optional[str] = None  # output folder for images-NNNNN.npy + index.json
    shard_size: int = 1024  # images per .npy file (1024 x 256 px = 192 MiB)
    workers: Optional[int] = None  # decoding processes (null = all cores, 0 = in the main process)
    overwrite: bool = False  # replace the shards already in `out`
    verbose: bool = False
    data: DataConfig = field(default_factory=DataConfig)  # training's data options: root, image_size, max_bad_fraction


@dataclass
class TrainCommandLine:
    """The options scripts/train.py has beyond :class:`fast_style.config.TrainConfig`'s, and the
    run's names, which the command line derives from the style and the clock."""

    # multi-style network (conditional instance norm): names of configs/style/*.yaml; each keeps its
    # own image, size, style_weight and tv_weight; [] = the single `style`
    styles: List[str] = field(default_factory=list)
    styles_dir: Optional[str] = None  # folder holding <name>.jpg for every name in `styles` (instead of cache/download)
    # the run's folder is runs/<run_name>; default <style or styles joined by +>-<date>-<time>
    run_name: str = "${style_label:${style.name},${styles}}-${now:%Y%m%d-%H%M%S}"
    # spelled out, so that --cfg job shows where the network goes: what train() picks when unset
    ckpt_out: str = "checkpoints/${style_label:${style.name},${styles}}.pt"


def train_schema() -> dict[str, Any]:
    """scripts/train.py's config before its presets: TrainConfig's defaults (run_dir is hydra's
    output folder, so not an option) with :class:`TrainCommandLine`'s options. Untyped, like the
    YAML it replaces: TrainConfig.validate checks the values (``trainer.steps=abc``), and hydra's
    struct mode refuses unknown keys."""
    values = dataclasses.asdict(TrainConfig())
    del values["run_dir"]
    values.update(dataclasses.asdict(TrainCommandLine()))
    return values


SCHEMAS: dict[str, Any] = {
    "stylize_schema": StylizeConfig,
    "export_schema": ExportConfig,
    "dashboard_schema": DashboardConfig,
    "convert_schema": ConvertConfig,
    "evaluate_schema": EvaluateConfig,
    "optimize_schema": OptimizeConfig,
    "preprocess_schema": PreprocessConfig,
}


def register_configs() -> None:
    """Store the schemas in hydra's ConfigStore (call before the ``@hydra.main`` function runs)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from fast_style.config import style_label

    # ${style_label:${style.name},${styles}} in TrainCommandLine's run_name and ckpt_out
    OmegaConf.register_new_resolver("style_label", style_label, replace=True)
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(name=name, node=node)
    store.store(name="train_schema", node=train_schema())
