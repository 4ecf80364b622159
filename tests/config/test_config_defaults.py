"""One recipe, whoever trains: the hydra configs and the library's dataclasses give the same loss.

Composed in-process with hydra's compose API for every loss network and every style: the loss a
``scripts/train.py style=<s> loss_net=<n>`` run trains with must equal what a Python caller gets
from ``LossConfig(style_weight=<style's>, tv_weight=<style's>).for_loss_net(<n>)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fast_style.config import StyleConfig, TrainConfig, train_config_from_dict
from fast_style.losses import DEFAULT_LAYERS, GATYS_STYLE_LAYERS, JOHNSON_STYLE_LAYERS, LossConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STYLES = sorted(p.stem for p in (CONFIGS / "style").glob("*.yaml"))
LOSS_NETS = sorted(p.stem for p in (CONFIGS / "loss_net").glob("*.yaml"))

OmegaConf.register_new_resolver("style_label", lambda name, styles: "+".join(styles) if styles else name, replace=True)


def _cli_config(style: str, loss_net: str) -> TrainConfig:
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"style={style}", f"loss_net={loss_net}", "data.root=/photos"])
    values = OmegaConf.to_container(cfg, resolve=True)
    values.pop("styles_dir")
    return train_config_from_dict(values)


def test_every_loss_network_has_default_layers() -> None:
    assert set(LOSS_NETS) == set(DEFAULT_LAYERS)
    assert DEFAULT_LAYERS["vgg16"] == ("relu2_2", JOHNSON_STYLE_LAYERS)  # Johnson et al.'s, kept
    assert DEFAULT_LAYERS["vgg19_caffe"] == ("relu4_2", GATYS_STYLE_LAYERS)


@pytest.mark.parametrize("loss_net", LOSS_NETS)
@pytest.mark.parametrize("style", STYLES)
def test_cli_and_library_train_with_the_same_loss(style: str, loss_net: str) -> None:
    cli = _cli_config(style, loss_net)
    library = LossConfig(style_weight=cli.style.style_weight, tv_weight=cli.style.tv_weight)
    assert cli.loss.for_loss_net(loss_net) == library.for_loss_net(loss_net)
    assert cli.loss.normalize is True


def test_default_style_matches_its_config_file() -> None:
    cli = _cli_config("starry_night", "vgg16")
    default = StyleConfig()
    assert (default.name, default.size, default.style_weight, default.tv_weight) == (
        cli.style.name, cli.style.size, cli.style.style_weight, cli.style.tv_weight)
    assert TrainConfig().loss == cli.loss
