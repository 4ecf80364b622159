"""The independent quality measure (fast_style.measure): its fixed points and its invariances.

Uses a deterministic random-init VGG19 (no weights needed): the properties tested hold for any
network, and the real pretrained one is exercised by tests/quality/test_recipe.py.
"""

from __future__ import annotations

import pytest
import torch

from fast_style.measure import GATYS_CONTENT_LAYER, GATYS_STYLE_LAYERS, StyleScorer, resize_to_measure
from fast_style.models import build_loss_net


@pytest.fixture(scope="module")
def net():
    return build_loss_net("vgg19_caffe", "random", [*GATYS_STYLE_LAYERS, GATYS_CONTENT_LAYER])


def _images():
    g = torch.Generator().manual_seed(0)
    photo = torch.rand(1, 3, 60, 90, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 64), indexing="ij")
    painting = torch.stack([torch.sin(20 * xx) * 0.5 + 0.5, yy, (xx * yy)]).unsqueeze(0)
    return photo, painting


def test_photo_scores_one_and_painting_scores_zero(net) -> None:
    photo, painting = _images()
    scorer = StyleScorer(painting, loss_net=net, size=96)
    same = scorer.score(photo, photo)
    assert same.style == pytest.approx(1.0, rel=1e-5)  # "no closer than the photo", by definition
    assert same.content == pytest.approx(0.0, abs=1e-9)
    assert all(v == pytest.approx(1.0, rel=1e-5) for v in same.per_layer)
    # the painting itself as the "output" (already at the measure size): its Grams exactly
    assert scorer.score(painting, photo).style == pytest.approx(0.0, abs=1e-9)


def test_scores_are_ratios_independent_of_the_feature_scale(net) -> None:
    """Multiplying every feature by k scales Grams by k^2: a ratio must not move."""
    photo, painting = _images()
    output = (photo * 0.6 + 0.2).clamp(0, 1)
    base = StyleScorer(painting, loss_net=net, size=96).score(output, photo)
    net.feature_scale = 37.0
    try:
        scaled = StyleScorer(painting, loss_net=net, size=96).score(output, photo)
    finally:
        net.feature_scale = 1.0
    assert scaled.style == pytest.approx(base.style, rel=1e-4)
    assert scaled.content == pytest.approx(base.content, rel=1e-4)
    assert 0 < base.content < 10 and base.style != pytest.approx(1.0)


def test_score_many_is_the_mean_over_photos(net) -> None:
    photo, painting = _images()
    scorer = StyleScorer(painting, loss_net=net, size=96)
    outputs = [photo.flip(-1), (photo * 0.5).clamp(0, 1)]
    each = [scorer.score(o, photo) for o in outputs]
    both = scorer.score_many(outputs, [photo, photo])
    assert both.style == pytest.approx((each[0].style + each[1].style) / 2)
    assert both.content == pytest.approx((each[0].content + each[1].content) / 2)


def test_resize_to_measure_keeps_aspect_and_range() -> None:
    image = torch.rand(1, 3, 321, 481)
    out = resize_to_measure(image, 384)
    assert out.shape[-2:] == (256, 384)
    assert out.min() >= 0 and out.max() <= 1
