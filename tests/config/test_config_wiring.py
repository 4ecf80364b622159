"""The CLI's config wiring, in-process with hydra's compose API (no subprocess: what these check
is the composition, not the entry point; scripts/train.py --cfg itself runs in
tests/e2e/test_scripts.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tests.helpers import compose_train


@pytest.mark.parametrize("style", ["starry_night", "the_scream", "the_great_wave", "candy", "mosaic", "udnie"])
def test_every_named_style_resolves(style):
    cfg = OmegaConf.to_container(compose_train(f"style={style}"), resolve=True)
    assert cfg["style"]["name"] == style and cfg["style"]["url"].startswith("https://")
