"""Folders through stylize_paths: DataLoader workers, batches of equal size after ``scale``
(planned from the file headers, EXIF rotation included), bad files skipped with one warning line,
and outputs identical to stylizing each image alone. Random-init 8-channel net: mechanics only."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_style.errors import ConfigError
from fast_style.images import load_image, to_tensor
from fast_style.stylize import Stylizer, plan_batches, stylize_paths
from tests.helpers import perturbed


def photo(path: Path, w: int, h: int, seed: int, orientation: int | None = None) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200
    img = Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    if orientation is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(path, exif=exif)
    return path


@pytest.fixture
def stylizer() -> Stylizer:
    return Stylizer(perturbed(scale=0.05), style="s", device="cpu")


def test_folder_is_batched_by_size_with_workers_and_skips_bad_files(tmp_path, stylizer, caplog):
    src = tmp_path / "in"
    wide = [photo(src / f"a{i}.png", 40, 30, i) for i in range(4)] + [photo(src / "sub" / "a4.png", 40, 30, 4)]
    tall = [photo(src / "b0.png", 30, 40, 5), photo(src / "b1.png", 30, 40, 6),
            photo(src / "rot.jpg", 40, 30, 7, orientation=6)]  # stored 40x30, shown 30x40: batched with b*
    odd = photo(src / "c.png", 20, 20, 8)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    shapes = []
    plain = stylizer.stylize_batch

    def record(batch: torch.Tensor, model: object = None) -> torch.Tensor:
        shapes.append(tuple(batch.shape))
        return plain(batch)

    stylizer.stylize_batch = record  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="fast_style.stylize"):
        written, errors = stylize_paths(stylizer, src, tmp_path / "out", batch_size=2, workers=2, progress=False)
    assert Counter(shapes) == {(2, 3, 30, 40): 2, (1, 3, 30, 40): 1, (2, 3, 40, 30): 1, (1, 3, 40, 30): 1,
                               (1, 3, 20, 20): 1}
    assert len(errors) == 1 and str(src / "broken.jpg") in errors[0] and "\n" not in errors[0]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == errors  # one warning line per bad file, as it happens
    inputs = sorted([*wide, *tall, odd])
    assert written == [tmp_path / "out" / f.relative_to(src).parent / f"{f.stem}_s.png" for f in inputs]
    for f, out in zip(inputs, written):  # batching changes nothing: instance norm is per image
        alone = plain(to_tensor(load_image(f)).unsqueeze(0))[0]
        saved = torch.from_numpy(np.asarray(Image.open(out), dtype=np.float32) / 255).permute(2, 0, 1)
        assert (saved - alone).abs().max() <= 1 / 255 + 1e-6, f  # 8-bit quantisation only


def test_batches_are_planned_from_headers_after_scale_and_exif(tmp_path):
    files = [photo(tmp_path / "a.png", 41, 31, 0), photo(tmp_path / "b.png", 40, 30, 1),
             photo(tmp_path / "c.png", 40, 31, 2), photo(tmp_path / "d.jpg", 31, 41, 3, orientation=8)]
    (tmp_path / "e.jpg").write_bytes(b"junk")
    files.append(tmp_path / "e.jpg")
    # at scale 0.5, 41x31 and 40x31 both become 20x16 (40x30 becomes 20x15), as scale_image makes them
    assert plan_batches(files, 0.5, 4) == [[0, 2, 3], [1], [4]]
    assert plan_batches(files, 0.5, 2) == [[0, 2], [1], [3], [4]]
    assert plan_batches(files, 1.0, 4) == [[0, 3], [1], [2], [4]]
    assert plan_batches(files, 1.0, 4, tile_size=40) == [[0], [1], [2], [3], [4]]  # tiled: alone


def test_bad_workers_or_batch_size_are_config_errors(tmp_path, stylizer):
    src = photo(tmp_path / "p.png", 20, 20, 0)
    for kwargs in ({"workers": -1}, {"workers": 1.5}, {"batch_size": 0}, {"batch_size": "big"}):
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            stylize_paths(stylizer, src, tmp_path / "out", progress=False, **kwargs)


def test_auto_batching_is_single_images_in_process_on_cpu_and_batched_on_cuda():
    from fast_style.stylize import resolve_batching

    assert resolve_batching(torch.device("cpu")) == (1, 0)
    batch, workers = resolve_batching(torch.device("cuda"))
    assert batch == 8 and 1 <= workers <= 4
    assert resolve_batching(torch.device("cpu"), 3, 2) == (3, 2)  # explicit values win
