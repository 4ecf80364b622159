import itertools

import pytest
import torch
from PIL import Image

from fast_style.data import InfiniteSampler, PhotoFolder, build_loader, fixed_photos, list_images
from fast_style.errors import ConfigError


def test_list_images_is_recursive_sorted_and_filters_extensions(tiny_photos):
    (tiny_photos / "notes.txt").write_text("not an image")
    (tiny_photos / "b" / "UPPER.JPG").write_bytes((tiny_photos / "b" / "img0.png").read_bytes())
    files = list_images(tiny_photos)
    assert len(files) == 7 and files == sorted(files)
    assert all(f.suffix.lower() in (".png", ".jpg") for f in files)


def test_missing_or_empty_folder_explains_how_to_get_coco(tmp_path):
    with pytest.raises(ConfigError, match="train2014"):
        list_images(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no .jpg"):
        list_images(tmp_path)


def test_crops_are_square_and_in_range(tiny_photos):
    ds = PhotoFolder(tiny_photos, image_size=32)
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, 32, 32) and x.min() >= 0 and x.max() <= 1


def test_corrupt_file_is_skipped_deterministically(tiny_photos):
    bad = tiny_photos / "a" / "aaa_corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    ds = PhotoFolder(tiny_photos, image_size=16)
    i = ds.files.index(bad)
    assert torch.equal(ds[i], ds[i + 1])


def test_sampler_is_a_seeded_permutation_per_epoch_and_resumable():
    n = 7
    full = list(itertools.islice(iter(InfiniteSampler(n, seed=3)), 3 * n))
    for e in range(3):
        assert sorted(full[e * n : (e + 1) * n]) == list(range(n))
    assert full[:n] != full[n : 2 * n]  # reshuffled every epoch
    resumed = list(itertools.islice(iter(InfiniteSampler(n, seed=3, start=10)), 3 * n - 10))
    assert resumed == full[10:]
    assert list(itertools.islice(iter(InfiniteSampler(n, seed=4)), n)) != full[:n]


def test_loader_resumes_at_the_same_batch(tiny_photos):
    ds = PhotoFolder(tiny_photos, image_size=16)
    a = build_loader(ds, batch_size=4, seed=1, workers=0)
    batches = [b for b, _ in zip(a, range(5))]
    b = build_loader(ds, batch_size=4, seed=1, start_step=3, workers=0)
    assert torch.equal(next(iter(b)), batches[3])


def test_fixed_photos(tiny_photos):
    batch = fixed_photos(tiny_photos, 3, 24)
    assert batch.shape == (3, 3, 24, 24)


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_ranks_split_each_global_batch_whatever_the_world_size(world_size):
    """DDP: process r reads the stream positions = r (mod world size), so the global batch of every
    step (positions [s*B, (s+1)*B)) is the same set of images for 1, 2 or 4 processes, and the
    processes' shares are disjoint; resume starts every rank at step * global batch."""
    n, batch, steps = 7, 4, 6
    stream = list(itertools.islice(iter(InfiniteSampler(n, seed=5)), steps * batch))
    for start_step in (0, 2):
        shares = [
            list(itertools.islice(
                iter(InfiniteSampler(n, seed=5, start=start_step * batch, rank=r, world_size=world_size)),
                (steps - start_step) * batch // world_size,
            ))
            for r in range(world_size)
        ]
        per = batch // world_size
        for s in range(start_step, steps):
            local = [share[(s - start_step) * per : (s - start_step + 1) * per] for share in shares]
            for r in range(world_size):
                assert local[r] == [stream[s * batch + r + world_size * k] for k in range(per)]
            assert sorted(sum(local, [])) == sorted(stream[s * batch : (s + 1) * batch])


def test_global_batch_must_split_evenly(tiny_photos, monkeypatch):
    from fast_style import distributed

    ds = PhotoFolder(tiny_photos, image_size=16)
    with pytest.raises(ConfigError, match="global batch"):
        build_loader(ds, batch_size=4, seed=0, workers=0, rank=0, world_size=3)
    monkeypatch.setenv("WORLD_SIZE", "3")  # checked before any process group is joined
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        distributed.setup("cpu", "auto", batch_size=4)
    with pytest.raises(ConfigError, match="ddp_backend"):
        distributed.setup("cpu", "mpi", batch_size=3)
    monkeypatch.setenv("WORLD_SIZE", "1")
    ctx = distributed.setup("cpu", "auto", batch_size=4)
    assert not ctx.enabled and ctx.is_main and ctx.any(True) and ctx.broadcast(3) == 3


def test_symlinked_subfolders_of_the_photo_root_are_read(tmp_path):
    """A data.root assembled from links to other folders: every linked photo counts (Path.rglob
    skipped linked folders silently: "1 images" where 4 were linked), and a link cycle ends."""
    real = tmp_path / "elsewhere"
    real.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 30), (i * 60, 10, 10)).save(real / f"p{i}.jpg")
    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (40, 30)).save(root / "own.jpg")
    (root / "linked").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(root, target_is_directory=True)  # a cycle back to the root
    names = sorted(p.name for p in list_images(root))
    assert names == ["own.jpg", "p0.jpg", "p1.jpg", "p2.jpg"]
