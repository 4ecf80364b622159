import pytest
import torch

from fast_style.errors import ConfigError
from fast_style.losses import LossConfig, PerceptualLoss, gram_matrix, style_loss, tv_loss
from fast_style.models import build_loss_net


def test_gram_matrix_hand_computed():
    # one image, 2 channels, 1x2 pixels: F = [[1, 2], [3, 4]]
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / (2 * 1 * 2)  # F F^T / (c*h*w)
    assert torch.allclose(gram_matrix(f)[0], expected)


def test_gram_is_size_independent_for_a_repeated_texture():
    tile = torch.rand(1, 4, 3, 3)
    big = tile.repeat(1, 1, 4, 4)
    assert torch.allclose(gram_matrix(tile), gram_matrix(big), atol=1e-6)


def test_gram_accumulates_in_fp32_under_bf16_input():
    f = torch.rand(1, 8, 16, 16).bfloat16()
    assert gram_matrix(f).dtype == torch.float32


def test_tv_loss_hand_computed():
    x = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]])
    # |dx| = [1, 2] mean 1.5; |dy| = [1, 2] mean 1.5
    assert tv_loss(x).item() == pytest.approx(3.0)
    assert tv_loss(torch.ones(1, 3, 5, 5)).item() == 0.0


def test_style_loss_weights_layers():
    g = [torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)]
    t = [torch.ones(1, 2, 2), 2 * torch.ones(1, 2, 2)]
    assert style_loss(g, t, [1.0, 0.5]).item() == pytest.approx(1.0 + 0.5 * 4.0)


@pytest.fixture(scope="module")
def loss_net():
    return build_loss_net("vgg16", "random", seed=0)


def test_perceptual_loss_terms(loss_net):
    torch.manual_seed(0)
    style = torch.rand(1, 3, 40, 40)
    content = torch.rand(2, 3, 32, 32)
    crit = PerceptualLoss(loss_net, style, LossConfig(content_weight=2.0, style_weight=3.0, tv_weight=0.5),
                          reference=content)
    terms = crit(content, content)
    assert terms.content.item() == 0.0  # output == content
    assert terms.total.item() == pytest.approx((terms.content + terms.style + terms.tv).item())
    assert terms.tv.item() == pytest.approx(0.5 * tv_loss(content).item())
    # the style target is the style image itself: zero style loss
    same = crit(style, style)
    assert same.style.item() == pytest.approx(0.0, abs=1e-12)
    assert crit(content, content).style.item() > 0


def test_style_grams_computed_once_and_content_pass_stops_at_content_layer(loss_net):
    crit = PerceptualLoss(loss_net, torch.rand(1, 3, 32, 32), LossConfig(), reference=torch.rand(1, 3, 32, 32))
    calls = {"deep": 0, "shallow": 0}
    deep = loss_net.features[loss_net.layer_index["conv4_3"]]
    shallow = loss_net.features[loss_net.layer_index["conv1_1"]]
    h1 = deep.register_forward_hook(lambda *a: calls.__setitem__("deep", calls["deep"] + 1))
    h2 = shallow.register_forward_hook(lambda *a: calls.__setitem__("shallow", calls["shallow"] + 1))
    try:
        x = torch.rand(2, 3, 32, 32, requires_grad=True)
        crit(x, x.detach()).total.backward()
    finally:
        h1.remove(), h2.remove()
    # output pass + content pass reach conv1_1; only the output pass reaches conv4_3; the style
    # image is not run again
    assert calls == {"deep": 1, "shallow": 2}
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_loss_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="style_weight"):
        LossConfig(style_weight=-1)
    with pytest.raises(ConfigError, match="style_layer_weights"):
        LossConfig(style_layer_weights=[1.0], style_layers=["relu1_2", "relu2_2"])
    with pytest.raises(ConfigError, match="style_layer_weights"):  # checked against the network's defaults
        LossConfig(style_layer_weights=[1.0]).for_loss_net("vgg16")


def test_normalized_loss_does_not_depend_on_the_feature_scale():
    """loss.normalize: the same weights mean the same thing on any loss network. Scaling every
    feature by k (a network with larger activations) leaves every term unchanged, while the
    classic raw-MSE terms move by k^2 (content) and k^4 (style)."""
    torch.manual_seed(0)
    net = build_loss_net("vgg16", "random", ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
    style, content = torch.rand(1, 3, 40, 40), torch.rand(2, 3, 32, 32)
    output = torch.rand(2, 3, 32, 32)
    terms = {}
    for normalize in (True, False):
        for k in (1.0, 50.0):
            net.feature_scale = k
            crit = PerceptualLoss(net, style, LossConfig(content_weight=1.0, style_weight=1.0, normalize=normalize),
                                  reference=content)
            terms[normalize, k] = crit(output, content)
    net.feature_scale = 1.0
    for name in ("content", "style"):
        scaled, unscaled = getattr(terms[True, 50.0], name).item(), getattr(terms[True, 1.0], name).item()
        assert scaled == pytest.approx(unscaled, rel=1e-3)
    assert terms[False, 50.0].content.item() == pytest.approx(2500 * terms[False, 1.0].content.item(), rel=1e-3)
    assert terms[False, 50.0].style.item() == pytest.approx(50.0**4 * terms[False, 1.0].style.item(), rel=1e-3)


def test_normalized_style_loss_is_one_for_the_unchanged_photos_on_every_painting(loss_net):
    """The style term is each layer's Gram error over the reference photos' own error, averaged
    over layers: the photos themselves score exactly 1 whatever the painting, so no layer and no
    painting starts louder than another (the old normaliser, the painting Gram's mean square,
    started la_muse's relu5_1 at 3.7 and relu2_1 at 0.28)."""
    torch.manual_seed(0)
    photos = torch.rand(3, 3, 32, 32)
    for painting in (torch.rand(1, 3, 48, 48), torch.rand(1, 3, 40, 56) * 0.3):
        crit = PerceptualLoss(loss_net, painting, LossConfig(content_weight=0.0, style_weight=1.0), reference=photos)
        grams = [gram_matrix(f) for f in loss_net.extract(photos, crit.config.style_layers).values()]
        per_layer = [torch.nn.functional.mse_loss(g, t.expand_as(g)).item() / s
                     for g, t, s in zip(grams, crit.style_grams, crit.style_scales)]
        assert per_layer == pytest.approx([1.0] * len(per_layer), rel=1e-5)
        assert crit(photos, photos).style.item() == pytest.approx(1.0, rel=1e-5)
        assert crit(painting, painting).style.item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="reference photos"):
        PerceptualLoss(loss_net, photos[:1], LossConfig())
