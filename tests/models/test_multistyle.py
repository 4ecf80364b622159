"""Conditional instance norm (model side of multi-style networks)."""

import pytest
import torch
from torch import nn

from fast_style.models import ImageTransformNet, TransformerConfig
from fast_style.models.transformer import ConditionalInstanceNorm2d


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = ImageTransformNet(TransformerConfig(width=8, n_residual=1, n_styles=3)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.weight.add_(0.5 * torch.randn_like(m.weight))
                m.bias.add_(0.5 * torch.randn_like(m.bias))
    return model


def test_each_style_has_its_own_norm_parameters(net):
    cins = [m for m in net.modules() if isinstance(m, ConditionalInstanceNorm2d)]
    assert len(cins) == 7 and not any(isinstance(m, nn.InstanceNorm2d) and m.affine for m in net.modules())
    assert all(m.weight.shape[0] == 3 for m in cins)
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        outs = [net(x, style=i) for i in range(3)]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])


def test_one_hot_mix_reproduces_the_single_style_exactly(net):
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x, style=1), net(x, style=torch.tensor([0.0, 1.0, 0.0])))
        per_image = net(x, style=[0, 2])
        assert torch.allclose(per_image[1:], net(x[1:], style=2), atol=1e-5)  # batch 2 vs 1: float order


def test_mix_interpolates_norm_parameters(net):
    cin = next(m for m in net.modules() if isinstance(m, ConditionalInstanceNorm2d))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        gamma, _ = cin.affine(net.style_weights(torch.tensor([0.7, 0.3, 0.0]), x))
    expected = 0.7 * cin.weight[0] + 0.3 * cin.weight[1]
    assert torch.allclose(gamma, expected.unsqueeze(0))


def test_the_style_is_an_argument_not_state(net):
    """Style weights go down the call (no attribute left on the norms), so a call without a style
    after one with a style still refuses, and the state dict has the classic keys only."""
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        net(x, style=1)
    assert not any(hasattr(m, "style_weights") for m in net.modules() if isinstance(m, ConditionalInstanceNorm2d))
    with pytest.raises(ValueError, match="multi-style network"):
        net(x)
    cin = next(m for m in net.modules() if isinstance(m, ConditionalInstanceNorm2d))
    with pytest.raises(RuntimeError, match="needs a style"):
        cin(torch.rand(1, 8, 4, 4))


def test_style_argument_errors(net):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="multi-style network"):
        net(x)
    with pytest.raises(ValueError, match="out of range"):
        net(x, style=3)
    with pytest.raises(ValueError, match="3 entries"):
        net(x, style=torch.tensor([1.0, 0.0]))


def test_single_style_layout_is_unchanged():
    keys = ImageTransformNet(TransformerConfig(width=8, n_residual=1)).state_dict().keys()
    assert "encoder.0.1.weight" in keys and all(".norm." not in k for k in keys)
