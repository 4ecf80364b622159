"""Training on folders with corrupt, odd and huge files: bad ones are skipped, counted and listed
once; too many stop the run before any training. Tiny runs with a random-init VGG (see helpers)."""

from __future__ import annotations

import logging

import pytest

from fast_style.data import PhotoFolder, check_image_header
from fast_style.errors import ConfigError, FastStyleError
from fast_style.train import train
from tests import badfiles
from tests.helpers import good_photos, tiny_config

LAZY = {"truncated_jpeg"}  # passes the header scan, fails when its pixels are decoded


@pytest.mark.parametrize("kind", sorted(badfiles.BAD))
def test_header_scan_verdict_per_bad_file(tmp_path, kind):
    path = badfiles.BAD[kind](tmp_path)
    reason = check_image_header(path)
    if kind in LAZY:
        assert reason is None  # caught lazily instead, see test_every_kind_of_file_in_one_run
    else:
        assert reason, kind


@pytest.mark.parametrize("kind", sorted(badfiles.ODD))
def test_odd_but_valid_files_give_square_rgb_crops(tmp_path, kind):
    path = badfiles.ODD[kind](tmp_path)
    assert check_image_header(path) is None
    ds = PhotoFolder(tmp_path, image_size=32, scan=True)
    crop = ds[0]
    assert crop.shape == (3, 32, 32) and 0 <= crop.min() and crop.max() <= 1 and not ds.bad_files()


@pytest.mark.slow
def test_bad_file_in_each_position_is_skipped_lazily_without_scan(tmp_path):
    for kind, make in badfiles.BAD.items():
        (tmp_path / kind).mkdir()
        make(tmp_path / kind)
    good_photos(tmp_path / "zz_good", n=1)
    ds = PhotoFolder(tmp_path, image_size=16, scan=False)
    for i in range(len(ds)):
        assert ds[i].shape == (3, 16, 16)
    assert len(ds.bad_files()) == len(badfiles.BAD)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_every_kind_of_file_in_one_run(tmp_path, caplog, workers):
    """Header-bad files are dropped up front, the truncated JPEG when first decoded (in a DataLoader
    worker process when workers=2: the shared flags carry it back); each is logged exactly once."""
    photos = good_photos(tmp_path / "photos", n=6)
    made = badfiles.make_all(photos / "junk")
    cfg = tiny_config(tmp_path, photos, steps=10, log_every=2, ckpt_every=5)  # 10 steps x 2 = one epoch
    cfg.data.workers = workers
    cfg.data.max_bad_fraction = 0.5
    with caplog.at_level(logging.WARNING, logger="fast_style"):
        result = train(cfg)
    assert result.step == 10 and not result.interrupted
    bad = {str(p) for p, _ in result.bad_files}
    assert bad == {str(made[k]) for k in badfiles.BAD}
    for path in bad:
        per_file = [r for r in caplog.records if path in r.getMessage() and "skipping" in r.getMessage()]
        assert len(per_file) == 1, path
    summary = [r.getMessage() for r in caplog.records if "were skipped as unreadable" in r.getMessage()]
    assert summary and summary[0].startswith(f"{len(badfiles.BAD)} of {6 + len(made)} training image(s)")


def test_too_many_bad_files_stop_before_any_training(tmp_path):
    photos = good_photos(tmp_path / "photos", n=6)
    badfiles.zero_bytes(photos)
    badfiles.html_as_jpg(photos)  # 2 of 8 bad: 25% > the default 1%
    cfg = tiny_config(tmp_path, photos)
    assert cfg.data.max_bad_fraction == 0.01
    with pytest.raises(ConfigError, match=r"2 of 8 images \(25.0%\).*data.max_bad_fraction=0.01"):
        train(cfg)
    assert not (tmp_path / "runs" / "starry_night-1" / "checkpoints").exists()


def test_too_many_files_failing_late_stop_the_run(tmp_path):
    """Without the scan (data.scan=false) the limit is enforced lazily, at the next log interval."""
    photos = good_photos(tmp_path / "photos", n=4)
    for i in range(3):
        badfiles.truncated_jpeg(photos, name=f"cut{i}.jpg")
    cfg = tiny_config(tmp_path, photos, steps=50)
    cfg.data.scan = False
    cfg.data.max_bad_fraction = 0.2
    with pytest.raises(FastStyleError, match="unreadable, more than data.max_bad_fraction=0.2"):
        train(cfg)


def test_bad_fraction_is_validated(tmp_path):
    cfg = tiny_config(tmp_path, good_photos(tmp_path / "photos"))
    cfg.data.max_bad_fraction = 1.5
    with pytest.raises(ConfigError, match="max_bad_fraction"):
        train(cfg)
