"""One home for every option (issue 24): the dataclasses hold every default.

For every script in scripts/, the config hydra composes from ``configs/<script>.yaml`` (in-process,
hydra's compose API) equals the library's dataclass defaults plus the presets that YAML picks,
stated here. The main YAMLs hold only a defaults list and hydra's settings; the presets
(configs/<group>/) set only what differs from their dataclass's defaults; and the library
functions the scripts call default their keywords to the same values as the scripts' options.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fast_style.config import (
    DataConfig,
    LoggerConfig,
    LossNetConfig,
    ModelConfig,
    StyleConfig,
    TrainConfig,
    named_style_configs,
    style_label,
    train_config_from_dict,
)
from fast_style.losses import LossConfig
from fast_style.script_configs import (
    ConvertConfig,
    DashboardConfig,
    EvaluateConfig,
    ExportConfig,
    OptimizeConfig,
    PreprocessConfig,
    StylizeConfig,
)
from tests.helpers import CONFIGS, REPO

SCRIPTS = sorted(p.stem for p in (REPO / "scripts").glob("*.py"))


def compose_script(name: str, *overrides: str):
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def starry_night() -> StyleConfig:
    return named_style_configs(["starry_night"], CONFIGS / "style")[0]


# script -> the library's config for it with the presets its YAML picks (``style: starry_night``,
# train's ``logger: visdom``); optimize's ``loss_net: vgg19_caffe`` is its dataclass default too.
LIBRARY = {
    "stylize": StylizeConfig,
    "export": ExportConfig,
    "dashboard": DashboardConfig,
    "convert": ConvertConfig,
    "evaluate": EvaluateConfig,
    "preprocess": PreprocessConfig,
    "optimize": lambda: OptimizeConfig(style=starry_night()),
    "train": lambda: TrainConfig(style=starry_night(), logger=LoggerConfig(kind="visdom")),
}


def cli_config(name: str) -> object:
    """What ``python scripts/<name>.py`` runs with, as the library's dataclass."""
    cfg = compose_script(name)
    if name != "train":
        return OmegaConf.to_object(cfg)
    values = OmegaConf.to_container(cfg, resolve=True)
    assert values.pop("styles") == [] and values.pop("styles_dir") is None  # names; none by default
    return train_config_from_dict(values)


def test_every_script_is_checked() -> None:
    assert SCRIPTS == sorted(LIBRARY)
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == SCRIPTS


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_cli_config_is_the_library_default(name: str) -> None:
    cli, library = cli_config(name), LIBRARY[name]()
    if name == "train":  # the command line names the run by the clock: runs/<style>-<date>-<time>, and
        # spells out the final checkpoint's path that train() gives an unset ckpt_out
        assert cli.run_name.startswith("starry_night-") and library.run_name == "default"
        assert cli.ckpt_out == "checkpoints/starry_night.pt" and library.ckpt_out is None
        library.run_name, library.ckpt_out = cli.run_name, cli.ckpt_out
    assert cli == library


def test_the_cli_overrides_reach_the_dataclass() -> None:
    """A spot check that the comparison above is not vacuous: a command-line value lands in the field."""
    assert OmegaConf.to_object(compose_script("stylize", "scale=0.5")).scale == 0.5
    assert OmegaConf.to_object(compose_script("optimize", "loss_net=vgg16")).loss_net == LossNetConfig("vgg16")
    assert OmegaConf.to_object(compose_script("preprocess", "data.image_size=128")).data.image_size == 128


def test_the_style_label_has_one_rule() -> None:
    """The command line's default checkpoint path and the library's name of a run agree, single and multi-style."""
    for overrides, names in (((), []), (("styles=[starry_night,the_scream]",), ["starry_night", "the_scream"])):
        cfg = OmegaConf.to_container(compose_script("train", *overrides), resolve=True)
        label = style_label("starry_night", [StyleConfig(name=n) for n in names])
        assert cfg["ckpt_out"] == f"checkpoints/{label}.pt"
        assert cfg["run_name"].startswith(f"{label}-")
    assert style_label("starry_night", ["starry_night", "the_scream"]) == "starry_night+the_scream"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_main_yamls_only_pick_presets(path: Path) -> None:
    """No value and no default in configs/<script>.yaml: its schema first, then presets."""
    values = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert set(values) <= {"defaults", "hydra"}, set(values) - {"defaults", "hydra"}
    schema, *rest = values["defaults"]
    assert schema == f"{path.stem}_schema"
    for entry in rest:  # presets of configs/<group>/ and hydra's own settings
        assert entry == "_self_" or (isinstance(entry, dict) and len(entry) == 1), entry
        group, choice = next(iter(entry.items())) if isinstance(entry, dict) else ("", "")
        preset = CONFIGS / group / f"{choice}.yaml"
        optional = choice is None and (CONFIGS / group).is_dir()  # `data: null`: no preset unless asked
        assert entry == "_self_" or group.startswith("override hydra/") or preset.is_file() or optional, entry


PRESETS = {"style": StyleConfig, "data": DataConfig, "loss_net": LossNetConfig, "model": ModelConfig,
           "logger": LoggerConfig, "loss": LossConfig}
NAMING_KEYS = {"name", "kind"}  # what a preset is called; may equal the default's (model=johnson)


def test_every_config_group_is_a_preset_of_a_dataclass() -> None:
    assert sorted(p.name for p in CONFIGS.iterdir() if p.is_dir() and p.name != "hydra") == sorted(PRESETS)


@pytest.mark.parametrize("path", sorted(p for group in PRESETS for p in (CONFIGS / group).glob("*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_presets_set_only_what_differs_from_the_defaults(path: Path) -> None:
    defaults = dataclasses.asdict(PRESETS[path.parent.name]())
    values = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    for key, value in values.items():
        assert key in defaults, f"{path.name}: {key} is not an option"
        assert key in NAMING_KEYS or value != defaults[key], f"{path.name}: {key}={value!r} is the default"


def _library_functions() -> list[tuple[Callable, type, dict[str, str]]]:
    """(library function, the script config whose options it takes, option -> parameter renames)."""
    from fast_style.dashboard.server import start_server
    from fast_style.evaluate import evaluate
    from fast_style.export import export_checkpoint
    from fast_style.optimize import optimize_photo
    from fast_style.shards import preprocess
    from fast_style.stylize import Stylizer, stylize_paths
    from fast_style.video import stylize_video

    return [
        (evaluate, EvaluateConfig, {}),
        (optimize_photo, OptimizeConfig, {}),
        (preprocess, PreprocessConfig, {}),
        (export_checkpoint, ExportConfig, {"format": "fmt"}),
        (start_server, DashboardConfig, {}),
        (Stylizer.__init__, StylizeConfig, {}),
        (stylize_paths, StylizeConfig, {}),
        (stylize_video, StylizeConfig, {}),
    ]


# Where a library function's keyword default differs from the script's on purpose.
KNOWN_DIFFERENCES = {
    ("start_server", "env_path"): "the library saves no envs unless asked; the dashboard script in runs/visdom",
}


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("function, config, renames", _library_functions(),
                         ids=lambda x: getattr(x, "__qualname__", ""))
def test_library_functions_default_to_the_scripts_options(function, config, renames) -> None:
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(config)}
    params = inspect.signature(function).parameters
    shared = [(option, renames.get(option, option)) for option in defaults if renames.get(option, option) in params]
    checked = 0
    for option, param in shared:
        default = params[param].default
        if (default is inspect.Parameter.empty or (function.__name__, option) in KNOWN_DIFFERENCES
                or dataclasses.is_dataclass(defaults[option])):  # a preset group (optimize's loss_net)
            continue
        assert _plain(default) == _plain(defaults[option]), f"{function.__qualname__}({param}=...) vs {option}"
        checked += 1
    assert checked, function.__qualname__


@pytest.mark.parametrize("preset", ["coco", "sample"])
def test_data_presets_pick_a_photo_folder(preset: str) -> None:
    """`data=coco` / `data=sample` set the photo folders and nothing else; no `data=` keeps the defaults."""
    values = OmegaConf.load(CONFIGS / "data" / f"{preset}.yaml")
    chosen = DataConfig(**OmegaConf.to_container(compose_script("train", f"data={preset}").data))
    assert (chosen.root, chosen.val_root) == (values.root, values.val_root)
    assert dataclasses.replace(chosen, root=None, val_root=None) == DataConfig()
    assert cli_config("train").data == DataConfig()
