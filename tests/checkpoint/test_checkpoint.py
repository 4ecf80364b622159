import pytest
import torch

from fast_style.checkpoint import VERSION, load_checkpoint, model_from_checkpoint, save_checkpoint
from fast_style.errors import CheckpointError
from fast_style.models import ImageTransformNet, TransformerConfig


def _state(model: ImageTransformNet) -> dict:
    return {"model_config": model.config.to_dict(), "model": model.state_dict(), "style": "x", "step": 3}


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = ImageTransformNet(TransformerConfig(width=8, n_residual=2)).eval()
    path = save_checkpoint(_state(model), tmp_path / "a" / "m.pt")
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp file left behind
    loaded = model_from_checkpoint(load_checkpoint(path))
    assert loaded.config == model.config
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"hello, not a zip")
    with pytest.raises(CheckpointError, match="not a readable fast-style checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a fast-style checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_classic_state_dict_gets_a_hint(tmp_path):
    torch.save({"conv1.conv2d.weight": torch.zeros(1), "in1.weight": torch.zeros(1)}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match="classic TransformerNet"):
        load_checkpoint(tmp_path / "c.pth")


def test_truncated_checkpoint(tmp_path):
    model = ImageTransformNet(TransformerConfig(width=4, n_residual=1))
    path = save_checkpoint(_state(model), tmp_path / "m.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path):
    model = ImageTransformNet(TransformerConfig(width=4, n_residual=1))
    state = _state(model)
    path = save_checkpoint(state, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw["version"] = VERSION + 1
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(path)


def test_weights_that_do_not_match_the_config(tmp_path):
    model = ImageTransformNet(TransformerConfig(width=4, n_residual=1))
    state = _state(model)
    state["model_config"] = {"width": 8, "n_residual": 1}
    path = save_checkpoint(state, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        model_from_checkpoint(load_checkpoint(path))


def test_pickled_code_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "fast-style-checkpoint", "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
