import pytest
import torch
from torch import nn

from fast_style.models import ImageTransformNet, TransformerConfig


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (31, 9), (5, 7), (1, 1), (2, 30), (64, 48)])
def test_output_has_exactly_the_input_size(size):
    torch.manual_seed(0)
    net = ImageTransformNet(TransformerConfig(width=8, n_residual=1))
    x = torch.rand(2, 3, *size)
    y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_default_architecture_is_johnsons_with_the_known_fixes():
    net = ImageTransformNet()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    # 9x9 -> 3x3/2 -> 3x3/2 -> 5 residual blocks of two 3x3 -> up 3x3 -> up 3x3 -> 9x9
    assert [c.kernel_size[0] for c in convs] == [9, 3, 3] + [3] * 10 + [3, 3, 9]
    assert [c.out_channels for c in convs] == [32, 64, 128] + [128] * 10 + [64, 32, 3]
    assert [c.stride[0] for c in convs] == [1, 2, 2] + [1] * 13
    assert all(c.padding == (0, 0) for c in convs), "padding must come from ReflectionPad2d"
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in net.modules()) == len(convs)
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.BatchNorm2d)) for m in net.modules())
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 15 and all(n.affine for n in norms)
    assert sum(isinstance(m, nn.Upsample) and m.mode == "nearest" for m in net.modules()) == 2
    assert sum(p.numel() for p in net.parameters()) == 1_679_235


def test_width_and_residual_blocks_are_configurable():
    net = ImageTransformNet(TransformerConfig(width=16, n_residual=3))
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 + 2 * 3 + 3
    assert max(c.out_channels for c in convs) == 64


def test_stylize_clamps_and_records_no_graph():
    net = ImageTransformNet(TransformerConfig(width=8, n_residual=1))
    with torch.no_grad():
        net.decoder[-1][1].bias.fill_(5.0)  # push outputs far above 1
    y = net.stylize(torch.rand(1, 3, 12, 12))
    assert y.max() == 1.0 and y.min() >= 0.0 and not y.requires_grad


@pytest.mark.parametrize("size", [(7, 5), (16, 16), (9, 22)])
def test_polyphase_upsample_conv_equals_upsample_then_padded_conv(size):
    """The fast decoder path must compute exactly the textbook upsample + reflect pad + conv,
    forward and backward, so checkpoints and training mean the same thing either way."""
    from fast_style.models.transformer import UpsampleConvNormReLU

    torch.manual_seed(0)
    layer = UpsampleConvNormReLU(6, 5)
    with torch.no_grad():  # non-trivial norm parameters, so a wrong bias/scale path would show
        layer[2].weight.uniform_(0.5, 1.5)
        layer[2].bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 6, *size, requires_grad=True)
    outs, grads = [], []
    for fast in (False, True):
        layer.fast_upsample = fast
        layer.zero_grad()
        x.grad = None
        y = layer(x)
        (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
        outs.append(y.detach())
        grads.append([x.grad.clone(), layer[1][1].weight.grad.clone(), layer[2].weight.grad.clone()])
    assert outs[0].shape == (2, 5, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for g_fast, g_ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(g_fast, g_ref, atol=1e-5, rtol=1e-4)
