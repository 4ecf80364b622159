"""The embedded sample (data.root=sample, shipped paintings) and shipped networks (ckpt=<name>):
what makes a fresh clone work offline, without ../shared/data."""

import fnmatch
import hashlib
import re
from pathlib import Path

import pytest
import tomllib
import torch

import fast_style.checkpoint as checkpoint
from fast_style.checkpoint import load_checkpoint, model_from_checkpoint, pretrained_state, save_checkpoint
from fast_style.data import SAMPLE_DIR, SAMPLE_PHOTOS, fixed_photos, list_images, resolve_training_data
from fast_style.errors import CheckpointError, ConfigError
from fast_style.images import load_image
from fast_style.models import ImageTransformNet, TransformerConfig
from fast_style.styles import resolve_style_image, shipped_style_image
from tests.helpers import REPO

SAMPLE_FILES = sorted(p for p in SAMPLE_DIR.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".png"))
OFFLINE_URL = "http://127.0.0.1:9/never.jpg"  # port 9 (discard): a download attempt fails at once


def test_sample_name_lists_the_embedded_photos():
    files = list_images("sample")
    assert files == sorted(SAMPLE_PHOTOS.glob("*.jpg")) and len(files) >= 5
    for path in files:
        img = load_image(path)
        assert img.mode == "RGB" and max(img.size) <= 512
    source = resolve_training_data("sample", image_size=64)
    assert source.kind == "photos" and Path(source.root) == SAMPLE_PHOTOS and not source.report.bad
    assert fixed_photos("sample", n=3, size=32).shape == (3, 3, 32, 32)


def test_a_local_folder_named_sample_is_reachable_as_a_path(tmp_path, monkeypatch):
    (tmp_path / "sample").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no .jpg"):  # ./sample is the (empty) local folder
        list_images("./sample")
    assert list_images("sample")[0].parent == SAMPLE_PHOTOS  # the bare name stays the embedded set


def test_shipped_painting_is_used_offline_before_cache_and_download(tmp_path, monkeypatch):
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path / "cache"))
    shipped = shipped_style_image("starry_night")
    assert shipped == SAMPLE_DIR / "styles" / "starry_night.jpg"
    # no network (the url cannot answer) and an empty cache: still resolves, nothing downloaded
    assert resolve_style_image("starry_night", url=OFFLINE_URL, filename="starry_night.jpg") == shipped
    assert not (tmp_path / "cache").exists()
    # a cached file of the same name does not shadow the shipped one; style.image wins over both
    (tmp_path / "cache" / "styles").mkdir(parents=True)
    other = tmp_path / "cache" / "styles" / "starry_night.jpg"
    other.write_bytes(SAMPLE_PHOTOS.joinpath("chelsea.jpg").read_bytes())
    assert resolve_style_image("starry_night", url=OFFLINE_URL, filename="starry_night.jpg") == shipped
    assert resolve_style_image("starry_night", image=str(other), url=OFFLINE_URL) == other
    # modern works are not shipped: they still go to the cache/download path
    assert shipped_style_image("candy") is None
    with pytest.raises(ConfigError, match="could not be downloaded"):
        resolve_style_image("candy", url=OFFLINE_URL, filename="candy.jpg")


def test_every_committed_image_has_a_licence_row_and_its_checksum():
    """fast_style/sample/README.md is the licence table: a file added without its row (source,
    licence) and checksum fails here."""
    readme = (SAMPLE_DIR / "README.md").read_text()
    assert SAMPLE_FILES, "no sample images found"
    for path in SAMPLE_FILES:
        rel = path.relative_to(SAMPLE_DIR).as_posix()
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{rel}` |")), None)
        assert row is not None, f"{rel} has no row in fast_style/sample/README.md"
        assert re.search(r"public domain|CC0", row, re.I), f"{rel}: its row names no public-domain/CC0 licence"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"{digest}  {rel}" in readme, f"{rel}: checksum in the README does not match the file"
    # no other images anywhere in the package (a painting must not slip in outside the table)
    package_images = {p for p in (REPO / "fast_style").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    assert package_images == set(SAMPLE_FILES)


def test_package_data_installs_the_sample_and_the_networks():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["fast_style"]
    for path in [*SAMPLE_FILES, SAMPLE_DIR / "README.md", REPO / "fast_style" / "pretrained" / "x.pt"]:
        rel = path.relative_to(REPO / "fast_style").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} would not be installed"


def _tiny_training_checkpoint() -> dict:
    torch.manual_seed(0)
    model = ImageTransformNet(TransformerConfig(width=8, n_residual=1)).eval()
    return {
        "model_config": model.config.to_dict(), "model": model.state_dict(), "style": "tiny",
        "loss_net": "vgg19_caffe", "step": 300, "config": {"style": {"name": "tiny"}},
        "optimizer": {"state": {}, "param_groups": []}, "rng": {"cpu": torch.get_rng_state(), "cuda": None},
    }


def test_bare_name_loads_the_shipped_fp16_network_as_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "PRETRAINED_DIR", tmp_path / "pretrained")
    state = _tiny_training_checkpoint()
    save_checkpoint(state, tmp_path / "full.pt")
    shipped = pretrained_state(load_checkpoint(tmp_path / "full.pt"))
    assert "optimizer" not in shipped and "rng" not in shipped
    assert all(v.dtype == torch.float16 for v in shipped["model"].values() if v.is_floating_point())
    save_checkpoint(shipped, tmp_path / "pretrained" / "tiny.pt")
    assert (tmp_path / "pretrained" / "tiny.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size

    monkeypatch.chdir(tmp_path)  # no ./tiny file: the name goes to the shipped folder
    loaded = load_checkpoint("tiny")
    assert loaded["style"] == "tiny" and loaded["step"] == 300
    assert all(v.dtype == torch.float32 for v in loaded["model"].values() if v.is_floating_point())
    reference = model_from_checkpoint(load_checkpoint(tmp_path / "full.pt"))
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        diff = (model_from_checkpoint(loaded)(x) - reference(x)).abs().max().item()
    assert diff < 2 / 255  # fp16 weights: the 8-bit output moves by at most a grey level or two
    assert checkpoint.shipped_networks() == ["tiny"]


def test_local_file_wins_and_unknown_names_are_one_clear_error(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(checkpoint, "PRETRAINED_DIR", tmp_path / "pretrained")
    save_checkpoint(pretrained_state(_tiny_training_checkpoint()), tmp_path / "pretrained" / "tiny.pt")
    monkeypatch.chdir(tmp_path)
    local = _tiny_training_checkpoint()
    local["style"] = "local"
    save_checkpoint(local, tmp_path / "tiny")
    with caplog.at_level("WARNING", logger="fast_style.checkpoint"):
        assert load_checkpoint("tiny")["style"] == "local"  # ./tiny exists: it is the one loaded ...
    assert "tiny: using the local file ./tiny, not the shipped network of that name" in caplog.text  # ... and said
    (tmp_path / "tiny").unlink()
    (tmp_path / "tiny").mkdir()  # a folder of that name is not a checkpoint: the shipped one, said
    caplog.clear()
    with caplog.at_level("WARNING", logger="fast_style.checkpoint"):
        assert load_checkpoint("tiny")["style"] == "tiny"
    assert "./tiny is a folder, not a checkpoint; using the shipped network tiny" in caplog.text
    with pytest.raises(CheckpointError, match=r"no shipped network of that name \(shipped: tiny\)"):
        load_checkpoint("the_scream")
    with pytest.raises(CheckpointError, match="no such checkpoint"):  # a path is never looked up by name
        load_checkpoint("checkpoints/the_scream.pt")


def test_every_shipped_network_has_a_model_card_and_they_stay_small():
    """Issue 13: each file in fast_style/pretrained is documented in docs/STYLES.md (painting, photos,
    recipe, scores) and loads by name; all of them together stay well under 25 MB."""
    shipped = sorted((REPO / "fast_style" / "pretrained").glob("*.pt"))
    assert len(shipped) >= 3
    cards = (REPO / "docs" / "STYLES.md").read_text()
    for path in shipped:
        assert f"| `{path.name}`" in cards, f"{path.name} has no model-card row in docs/STYLES.md"
        state = load_checkpoint(path.stem)
        assert state["style"] == path.stem and state["step"] > 0
    assert sum(p.stat().st_size for p in shipped) < 25e6
