"""Exported models (ONNX through onnxruntime, TorchScript) match PyTorch at several sizes."""

import subprocess
from pathlib import Path

import pytest
import torch

from fast_style.checkpoint import save_checkpoint
from fast_style.models import ImageTransformNet, TransformerConfig
from tests.helpers import run_script

SIZES = [(1, 3, 64, 64), (2, 3, 37, 50), (1, 3, 101, 33)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = ImageTransformNet(TransformerConfig(width=8, n_residual=2)).eval()
    # non-trivial norm parameters, so a wrong export cannot hide behind identity-like layers
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("export") / "m.pt"
    save_checkpoint({"model_config": model.config.to_dict(), "model": model.state_dict(), "style": "s"}, path)
    return path, model


def export(ckpt: Path, fmt: str, out: Path) -> subprocess.CompletedProcess:
    return run_script("export.py", f"ckpt={ckpt}", f"format={fmt}", f"output={out}", timeout=300)


@pytest.mark.slow  # a script in a subprocess
def test_onnx_export_matches_pytorch_with_dynamic_sizes(checkpoint, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    ckpt, model = checkpoint
    result = export(ckpt, "onnx", tmp_path / "m.onnx")
    assert result.returncode == 0, result.stderr[-2000:]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    name = session.get_inputs()[0].name
    for shape in SIZES:
        x = torch.rand(*shape)
        out = session.run(None, {name: x.numpy()})[0]
        with torch.no_grad():
            ref = model(x).numpy()
        assert out.shape == ref.shape
        assert abs(out - ref).max() < 1e-3, shape


@pytest.mark.slow  # a script in a subprocess
def test_torchscript_export_matches_pytorch(checkpoint, tmp_path):
    ckpt, model = checkpoint
    result = export(ckpt, "torchscript", tmp_path / "m.ts.pt")
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = torch.jit.load(str(tmp_path / "m.ts.pt"))
    for shape in SIZES + [(1, 3, 3, 2)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            assert (loaded(x) - model(x)).abs().max() < 1e-3, shape


@pytest.mark.slow  # a script in a subprocess
def test_export_errors_are_one_line(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    result = export(ckpt, "tflite", tmp_path / "m.x")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "onnx, torchscript" in result.stderr
    result = export(tmp_path / "missing.pt", "onnx", tmp_path / "m.onnx")
    assert result.returncode == 2 and "no such checkpoint" in result.stderr


@pytest.mark.parametrize("kernel", [9, 3])
def test_polyphase_output_conv_computes_the_same_layer(kernel):
    """The exported graphs' form of the last conv (stride 2 to 4x the outputs + pixel shuffle) is
    the same function as the reflection-padded stride-1 conv, on the even sides it ever sees."""
    from fast_style.export import _for_export, _PolyphaseOutputConv
    from fast_style.models.transformer import ConvLayer

    torch.manual_seed(kernel)
    layer = ConvLayer(8, 3, kernel)
    fast = _PolyphaseOutputConv(layer)
    for shape in [(1, 8, 16, 16), (2, 8, 12, 20)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(fast(x), layer(x), rtol=1e-5, atol=1e-5)
    model = ImageTransformNet(TransformerConfig(width=8, n_residual=1))
    assert isinstance(_for_export(model).decoder[-1], _PolyphaseOutputConv)
    assert isinstance(model.decoder[-1], ConvLayer)  # the caller's network is left alone
    x = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        torch.testing.assert_close(_for_export(model)(x), model(x), rtol=1e-5, atol=1e-5)
