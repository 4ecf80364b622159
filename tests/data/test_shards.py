"""Pre-resized uint8 shards (scripts/preprocess.py, fast_style/shards.py) against the JPEG path, on a
subset of the real photos (symlinked into tmp, never copied into the repo)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from fast_style.checkpoint import load_checkpoint
from fast_style.config import TrainConfig
from fast_style.data import (
    INDEX,
    PhotoFolder,
    ShardDataset,
    build_loader,
    fixed_photos,
    is_shard_dir,
    list_images,
    load_crop,
)
from fast_style.errors import ConfigError
from fast_style.loggers import NullLogger
from fast_style.shards import preprocess
from fast_style.train import train
from tests.helpers import run_script, tiny_config

SIZE = 32


@pytest.fixture(scope="module")
def photos(photos_train, tmp_path_factory) -> Path:
    """12 real photos in two sub-folders, plus one corrupt .jpg and one text file. The embedded
    sample (a fresh clone) has fewer photos: they are linked again under other names."""
    root = tmp_path_factory.mktemp("subset") / "photos"
    sources = list_images(photos_train)
    for i in range(12):
        src = sources[i % len(sources)]
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        name = src.name if i < len(sources) else f"{src.stem}_{i}{src.suffix}"
        (sub / name).symlink_to(src)
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("ignored")
    return root


@pytest.fixture(scope="module")
def shards(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "s32"
    report = preprocess(photos, out, image_size=SIZE, shard_size=5, workers=2, max_bad_fraction=0.5, progress=False)
    assert report.n_images == 12 and report.n_listed == 13 and report.shards == 3  # 5 + 5 + 2
    assert [p.name for p, _ in report.skipped] == ["broken.jpg"]
    return out


def test_index_records_sources_size_and_skips(photos, shards):
    index = json.loads((shards / INDEX).read_text())
    good = [str(p) for p in list_images(photos) if p.name != "broken.jpg"]
    assert index["sources"] == good and index["image_size"] == SIZE and index["count"] == 12
    assert [s["count"] for s in index["shards"]] == [5, 5, 2]
    assert index["skipped"][0]["path"].endswith("broken.jpg") and index["skipped"][0]["reason"]
    assert is_shard_dir(shards) and not is_shard_dir(photos)


def test_shard_images_are_bit_identical_to_the_jpeg_path(shards):
    ds = ShardDataset(shards, SIZE)
    for i in range(len(ds)):
        assert torch.equal(ds[i], load_crop(ds.files[i], SIZE)), ds.files[i]
    assert torch.equal(fixed_photos(shards, 3, SIZE), torch.stack([load_crop(p, SIZE) for p in ds.files[:3]]))


def test_loader_batches_match_the_jpeg_folder_with_workers(photos, shards):
    jpeg = PhotoFolder(photos, SIZE, scan=True)  # the header scan drops broken.jpg, as preprocessing did
    assert jpeg.files == ShardDataset(shards).files
    a = build_loader(jpeg, batch_size=4, seed=3, start_step=2, workers=0)
    b = build_loader(ShardDataset(shards, SIZE), batch_size=4, seed=3, start_step=2, workers=2)
    for x, y in itertools.islice(zip(a, b), 5):  # 20 images: across an epoch boundary
        assert torch.equal(x, y)


def tiny(tmp_path: Path, root: Path, style: Path) -> TrainConfig:
    cfg = tiny_config(tmp_path, root, steps=2, style=style)
    cfg.data.max_bad_fraction = 0.5
    return cfg


@pytest.mark.slow
def test_training_on_shards_equals_training_on_the_jpegs(tmp_path, photos, shards, style_image):
    a = train(tiny(tmp_path / "jpeg", photos, style_image), logger=NullLogger())
    b = train(tiny(tmp_path / "auto", shards, style_image), logger=NullLogger())  # data.root autodetected
    cfg = tiny(tmp_path / "explicit", photos, style_image)
    cfg.data.root, cfg.data.shards = None, str(shards)
    c = train(cfg, logger=NullLogger())
    assert a.history == b.history == c.history
    wa, wb = load_checkpoint(a.checkpoint)["model"], load_checkpoint(b.checkpoint)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [p.name for p, _ in a.bad_files] == ["broken.jpg"] and b.bad_files == []  # reported at preprocessing


def test_mistakes_are_one_line_config_errors(tmp_path, photos, shards, style_image):
    with pytest.raises(ConfigError, match="made at 32 px but data.image_size=64"):
        ShardDataset(shards, 64)
    with pytest.raises(ConfigError, match="already holds shards"):
        preprocess(photos, shards, image_size=SIZE, workers=0, progress=False)
    with pytest.raises(ConfigError, match="not a shard folder"):
        ShardDataset(photos)
    with pytest.raises(ConfigError, match="unreadable"):  # 1 of 13 > 1%
        preprocess(photos, tmp_path / "strict", image_size=SIZE, workers=0, progress=False)
    assert not (tmp_path / "strict" / INDEX).exists()  # no index: not usable as shards
    cfg = tiny(tmp_path, shards, style_image)
    cfg.data.image_size = 64
    with pytest.raises(ConfigError, match="preprocess again at 64"):
        train(cfg, logger=NullLogger())


@pytest.mark.slow  # a script in a subprocess
def test_preprocess_cli(tmp_path, photos):
    out = tmp_path / "cli"
    result = run_script("preprocess.py", f"data.root={photos}", f"out={out}", "data.image_size=32",
                        "data.max_bad_fraction=0.5", "workers=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"wrote 12 images at 32 px to {out}" in result.stdout and f"data.root={out}" in result.stdout
    assert "skipped 1 of 13 file(s) as unreadable" in result.stderr and "broken.jpg" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli"]  # no hydra output dir
    assert torch.equal(ShardDataset(out, 32)[0], load_crop(ShardDataset(out).files[0], 32))


def test_colour_statistics_for_preserve_color_read_the_shards(photos, shards):
    """style.preserve_color=histogram on a shard root: the photos' colour statistics come from the
    stored crops (no JPEG listing), and agree with the same photos read from the folder."""
    from fast_style.styles import photo_color_stats

    mean_s, cov_s = photo_color_stats(shards, n=12)
    mean_j, cov_j = photo_color_stats(photos, n=13, size=SIZE)  # the JPEGs (broken.jpg skipped)
    assert torch.allclose(mean_s, mean_j, atol=0.02)  # crops vs whole photos: close, not equal
    assert torch.allclose(cov_s, cov_j, atol=0.01)
    assert mean_s.std() > 0.005  # real, coloured statistics, not a constant
