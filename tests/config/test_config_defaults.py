"""One recipe, whoever trains: the hydra configs and the library's dataclasses give the same run.

Composed in-process with hydra's compose API for every loss network and every style: what a
``scripts/train.py style=<s> loss_net=<n>`` run trains with must equal what a Python caller gets
from ``TrainConfig`` naming only that style (its configs/style file) and loss network: the loss
(weights and layers) and every other default, except how the run is named and shown.
"""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from fast_style.config import (
    DataConfig,
    LoggerConfig,
    LossNetConfig,
    StyleConfig,
    TrainConfig,
    named_style_configs,
    train_config_from_dict,
    train_config_to_dict,
)
from fast_style.losses import DEFAULT_LAYERS, GATYS_STYLE_LAYERS, JOHNSON_STYLE_LAYERS, LossConfig
from tests.helpers import CONFIGS, compose_train

STYLES = sorted(p.stem for p in (CONFIGS / "style").glob("*.yaml"))
LOSS_NETS = sorted(p.stem for p in (CONFIGS / "loss_net").glob("*.yaml"))


def _cli_config(style: str, loss_net: str) -> TrainConfig:
    cfg = compose_train(f"style={style}", f"loss_net={loss_net}", "data.root=/photos")
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


def _library_config(style: str, loss_net: str) -> TrainConfig:
    """What a Python caller writes for ``style=<style> loss_net=<loss_net>``: nothing but those."""
    return TrainConfig(
        style=named_style_configs([style], CONFIGS / "style")[0],
        loss_net=LossNetConfig(name=loss_net),
        data=DataConfig(root="/photos"),
    )


@pytest.mark.parametrize("loss_net", LOSS_NETS)
@pytest.mark.parametrize("style", STYLES)
def test_library_train_defaults_equal_the_cli_defaults(style: str, loss_net: str) -> None:
    """Every value train() gets from the dataclasses equals what scripts/train.py composes from
    configs/, field by field, but for naming and the logger: the CLI names the run by the clock
    (hydra's run folder, runs/<style>-<date>-<time>) and spells out ckpt_out, and its
    configs/train.yaml picks the ``logger: visdom`` preset where the library logs nowhere unless
    asked: the CLI's config is the library's with ``logger=LoggerConfig(kind="visdom")``."""
    cli = _cli_config(style, loss_net)
    library = _library_config(style, loss_net)
    assert cli.run_name.startswith(f"{style}-") and library.run_name == "default"
    assert cli.logger == LoggerConfig(kind="visdom") and library.logger == LoggerConfig()
    # train() names the final checkpoint checkpoints/<style>.pt when ckpt_out is unset, like the CLI
    assert library.ckpt_out is None and cli.ckpt_out == f"checkpoints/{style}.pt"
    library = dataclasses.replace(library, logger=LoggerConfig(kind="visdom"), run_name=cli.run_name,
                                  ckpt_out=cli.ckpt_out)
    assert cli == library


@pytest.mark.parametrize("loss_net", LOSS_NETS)
@pytest.mark.parametrize("style", STYLES)
def test_library_and_cli_train_with_the_style_files_weights(style: str, loss_net: str) -> None:
    """The loss a run records (layers resolved for its loss network) is the same either way, and a
    single-style run's loss weights are its style file's: configs/loss/perceptual.yaml
    interpolates them, the library's LossConfig defaults equal them (one recipe for every style;
    a style file with its own weight would fail here, for the library would not follow it)."""
    cli, library = _cli_config(style, loss_net), _library_config(style, loss_net)
    assert train_config_to_dict(library)["loss"] == train_config_to_dict(cli)["loss"]
    for cfg in (cli, library):
        assert (cfg.loss.style_weight, cfg.loss.tv_weight) == (cfg.style.style_weight, cfg.style.tv_weight)
