"""Stylizer options: strength, colour preservation, multi-style selection and mixing by name."""

import pytest
import torch

from fast_style.checkpoint import save_checkpoint
from fast_style.color import rgb_to_ycbcr
from fast_style.errors import ConfigError
from fast_style.models import TransformerConfig
from fast_style.stylize import Stylizer
from tests.helpers import perturbed


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    model = perturbed(TransformerConfig(width=8, n_residual=1))
    path = tmp_path_factory.mktemp("ck") / "single.pt"
    save_checkpoint({"model_config": model.config.to_dict(), "model": model.state_dict(), "style": "candy"}, path)
    return path


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    model = perturbed(TransformerConfig(width=8, n_residual=1, n_styles=2))
    path = tmp_path_factory.mktemp("ck") / "multi.pt"
    save_checkpoint(
        {"model_config": model.config.to_dict(), "model": model.state_dict(), "style": "a+b", "styles": ["a", "b"]},
        path,
    )
    return path


def test_strength_blends_towards_the_photo(single):
    x = torch.rand(3, 20, 20)
    full = Stylizer.from_checkpoint(single, device="cpu")(x)
    assert torch.allclose(Stylizer.from_checkpoint(single, device="cpu", strength=0.0)(x), x)
    half = Stylizer.from_checkpoint(single, device="cpu", strength=0.5)(x)
    assert torch.allclose(half, 0.5 * x + 0.5 * full, atol=1e-6)
    with pytest.raises(ConfigError, match="strength"):
        Stylizer.from_checkpoint(single, device="cpu", strength=1.5)


def test_luminance_preservation_keeps_the_photos_chroma(single):
    x = 0.3 + 0.4 * torch.rand(3, 24, 24)
    out = Stylizer.from_checkpoint(single, device="cpu", preserve_color="luminance")(x)
    plain = Stylizer.from_checkpoint(single, device="cpu")(x)
    diff = (rgb_to_ycbcr(out)[1:] - rgb_to_ycbcr(x)[1:]).abs()
    # equal except where a very dark/bright stylized pixel cannot carry that chroma (RGB clamp;
    # this untrained net produces many such extremes)
    assert (diff < 1e-3).float().mean() > 0.75 and diff.mean() < 0.02
    assert (rgb_to_ycbcr(plain)[1:] - rgb_to_ycbcr(x)[1:]).abs().mean() > 5 * diff.mean()


@pytest.mark.slow
def test_multi_style_by_name_and_mix(multi):
    x = torch.rand(1, 3, 16, 16)
    a = Stylizer.from_checkpoint(multi, device="cpu", style="a")
    b = Stylizer.from_checkpoint(multi, device="cpu", style="b")
    assert a.style == "a" and not torch.allclose(a(x), b(x))
    only_a = Stylizer.from_checkpoint(multi, device="cpu", style_mix={"a": 1.0, "b": 0.0})
    assert torch.equal(only_a(x), a(x))  # mixing weights 1/0 reproduce the single style exactly
    mixed = Stylizer.from_checkpoint(multi, device="cpu", style_mix={"a": 0.7, "b": 0.3})
    assert mixed.style == "a+b" and not torch.allclose(mixed(x), a(x))
    with pytest.raises(ConfigError, match="holds 2 styles"):
        Stylizer.from_checkpoint(multi, device="cpu")
    with pytest.raises(ConfigError, match="not in"):
        Stylizer.from_checkpoint(multi, device="cpu", style="zzz")


@pytest.mark.slow
def test_compiled_stylizer_matches_eager_and_really_compiles(multi):
    """compile=True: the same output as eager (mixing and strength included), also when called
    under inference_mode as the video path does, and a graph is really captured by dynamo."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    options = {"style_mix": {"a": 0.3, "b": 0.7}, "strength": 0.8, "device": "cpu"}
    eager = Stylizer.from_checkpoint(multi, **options)
    compiled = Stylizer.from_checkpoint(multi, compile=True, **options)
    x = torch.rand(2, 3, 37, 50, generator=torch.Generator().manual_seed(1))
    expected = eager(x)
    # fused kernels round differently; 1/255 is 4e-3
    torch.testing.assert_close(compiled(x), expected, atol=1e-4, rtol=0)
    with torch.inference_mode():
        torch.testing.assert_close(compiled.stylize_batch(x.clone()), expected, atol=1e-4, rtol=0)
    assert counters["stats"]["unique_graphs"] >= 1
    assert not counters["graph_break"], dict(counters["graph_break"])


def test_compile_must_be_a_bool(single):
    with pytest.raises(ConfigError, match="compile must be true or false"):
        Stylizer.from_checkpoint(single, compile="yes")
