"""Tiled inference (fast_style.tiling): the same output as one whole-image pass, with activation
memory set by the tile size, and proof that the whole-image norm statistics are what makes it so.

Networks are random-init (perturbed so every layer matters): this checks the arithmetic of
tiling, not style. The 2000x1500 test photo is a photos_val image upscaled in memory.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from fast_style.errors import ConfigError
from fast_style.images import load_image, to_tensor
from fast_style.models import ImageTransformNet, TransformerConfig
from fast_style.stylize import Stylizer
from fast_style.tiling import TileReport, stylize_tiled
from tests.helpers import perturbed

ONE_LEVEL = 1 / 255


@pytest.fixture(scope="module")
def photo(photos_val) -> torch.Tensor:
    """(1, 3, 1500, 2000): a real photo upscaled to 2000x1500."""
    img = load_image(sorted(photos_val.iterdir())[0]).resize((2000, 1500), Image.Resampling.BICUBIC)
    return to_tensor(img).unsqueeze(0)


@pytest.fixture(scope="module")
def small_net() -> ImageTransformNet:
    return perturbed(TransformerConfig(width=8, n_residual=1))


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operator allocates (views and in-place results excluded,
    they allocate nothing), and separately the preallocated ``empty`` buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.buffers = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        schema = func._schema
        if schema.is_mutable or any(r.alias_info is not None for r in schema.returns):
            return out
        numel = sum(t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        if schema.name in ("aten::empty", "aten::new_empty"):
            self.buffers += numel
        else:
            self.largest = max(self.largest, numel)
        return out


@pytest.fixture(scope="module")
def big_runs(photo, small_net):
    """Whole-image and 512-px-tiled outputs of the 2000x1500 photo, with their largest tensors."""
    with LargestTensor() as whole_mem:
        whole = small_net.stylize(photo)
    report = TileReport()
    with LargestTensor() as tiled_mem:
        tiled = stylize_tiled(small_net, photo, 512, report=report)
    return whole, tiled, whole_mem, tiled_mem, report


def naive_tiles(model: ImageTransformNet, x: torch.Tensor, tile: int, halo: int = 32) -> torch.Tensor:
    """What tiling without the statistics pass gives: each tile (with a halo) normalised alone."""
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    for a in range(0, h, tile):
        for c in range(0, w, tile):
            a0, c0 = max(0, a - halo), max(0, c - halo)
            y = model.stylize(x[..., a0 : min(h, a + tile + halo), c0 : min(w, c + tile + halo)])
            out[..., a : a + tile, c : c + tile] = y[..., a - a0 : a - a0 + tile, c - c0 : c - c0 + tile]
    return out


@pytest.mark.slow
def test_tiled_equals_whole_image_on_a_2000x1500_photo_and_naive_tiles_do_not(photo, small_net, big_runs):
    whole, tiled, _, _, report = big_runs
    err = (tiled - whole).abs()
    print(f"2000x1500, tile 512: MAE {err.mean().item() * 255:.2e}/255, max {err.max().item() * 255:.2e}/255, {report}")
    assert err.mean() < ONE_LEVEL / 100 and err.max() < ONE_LEVEL / 4
    assert report.tiles > 9 * 4  # really tiled: every pass cuts its map into several tiles
    naive = (naive_tiles(small_net, photo, 512) - whole).abs()
    print(f"naive per-tile normalisation: MAE {naive.mean().item() * 255:.1f}/255")
    assert naive.mean() > ONE_LEVEL  # without whole-image statistics the bound fails


@pytest.mark.slow
def test_default_johnson_network_tiled_equals_whole(photo):
    model = perturbed(TransformerConfig())  # width 32, 5 residual blocks: the real architecture
    x = torch.nn.functional.interpolate(photo, size=(240, 320), mode="area")
    whole = model.stylize(x)
    tiled = stylize_tiled(model, x, 128)  # 3x2 full-resolution tiles, 32 px ones at 1/4 resolution
    err = (tiled - whole).abs()
    print(f"johnson 320x240, tile 128: MAE {err.mean().item() * 255:.2e}/255, max {err.max().item() * 255:.2e}/255")
    assert err.mean() < ONE_LEVEL / 100 and err.max() < ONE_LEVEL / 4


@pytest.mark.slow
def test_multi_style_strength_and_colour_options_through_the_stylizer(photo):
    model = perturbed(TransformerConfig(width=8, n_residual=1, n_styles=3))
    x = torch.nn.functional.interpolate(photo, size=(120, 160), mode="area")
    x = torch.cat([x, x.flip(-1)])  # a batch of two: statistics are per image
    mix = torch.tensor([0.2, 0.5, 0.3])
    for options in ({"strength": 0.6, "preserve_color": "luminance"}, {"preserve_color": "histogram"}):
        whole = Stylizer(model, device="cpu", style_weights=mix, **options)(x)
        tiled = Stylizer(model, device="cpu", style_weights=mix, tile_size=80, **options)(x)
        err = (tiled - whole).abs()
        assert err.mean() < ONE_LEVEL / 100 and err.max() < ONE_LEVEL / 4, options
    # one style of the multi-style net, by index
    tiled = stylize_tiled(model, x, 80, style=1)
    assert (tiled - model.stylize(x, 1)).abs().max() < ONE_LEVEL / 4


@pytest.mark.slow
def test_activation_memory_scales_with_the_tile_not_the_image(photo, small_net, big_runs):
    _, _, whole, tiled_512, _ = big_runs
    quarter = torch.nn.functional.interpolate(photo, size=(750, 1000), mode="area")
    with LargestTensor() as tiled_256:
        stylize_tiled(small_net, quarter, 256)
    # the widest full-resolution tensor (the decoder's upsampled 2*width channels) over a tile
    # and its halo; tiles are at most tile_size per side (the image is cut into equal spans)
    def bound(tile: int) -> int:
        return 2 * small_net.config.width * (tile + 16) ** 2

    print(f"largest tensor (elements): whole 2000x1500 {whole.largest:,}; tiled 512 {tiled_512.largest:,} "
          f"(bound {bound(512):,}); tiled 256 on 1000x750 {tiled_256.largest:,} (bound {bound(256):,})")
    assert tiled_512.largest <= bound(512) and tiled_256.largest <= bound(256)
    assert tiled_256.largest > bound(256) / 2  # the bound is tight: it is the tile that sets memory
    assert whole.largest > 4 * tiled_512.largest  # the photo is 11x the tile's area
    # what does grow with the image: the output and the low-resolution cache (2 maps of 4*width
    # channels at 1/4 side, i.e. width/2 floats per pixel), both preallocated once
    width = small_net.config.width
    assert tiled_512.buffers == 3 * 2000 * 1500 + 2 * (4 * width) * (1500 // 4) * (2000 // 4)


@pytest.mark.parametrize("bad", [0, 63, -1, "1024", 1.5, True])
def test_bad_tile_size_is_one_config_error(small_net, bad):
    with pytest.raises(ConfigError, match="tile_size") as info:
        Stylizer(small_net, device="cpu", tile_size=bad)
    assert "\n" not in str(info.value)


def test_images_within_the_tile_take_the_whole_image_path(small_net):
    x = torch.rand(1, 3, 100, 120)
    assert torch.equal(Stylizer(small_net, device="cpu", tile_size=128, backend="torch")(x), small_net.stylize(x))


@pytest.mark.parametrize(("h", "w"), [(9, 70), (37, 29)])
def test_odd_sizes_and_tiles_thinner_than_the_padding_are_exact(h, w):
    from fast_style.tiling import _TiledRun  # below MIN_TILE on purpose: every border case at once

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny tiles: threads only add synchronisation
    try:
        model = perturbed(TransformerConfig(width=4, n_residual=1))
        x = torch.rand(1, 3, h, w)
        for tile in (3, 13):  # full-resolution tiles narrower than the 9x9 convs' 4 px padding
            with torch.inference_mode():
                tiled = _TiledRun(model, x, tile).forward()
            assert (tiled - model.stylize(x)).abs().max() < 1e-4, tile
    finally:
        torch.set_num_threads(threads)


def test_huge_images_are_refused_in_one_line_unless_tiled(tmp_path, small_net, monkeypatch):
    """Pillow's decompression-bomb guard (scaled down here to 1000 px so the test image is small):
    a plain stylize names tile_size in its one-line error; with tile_size the file is read."""
    from fast_style.stylize import stylize_paths

    src = tmp_path / "huge.png"
    Image.new("RGB", (80, 60), (200, 30, 30)).save(src)  # 4800 px > 2 x 1000: refused by default
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    written, errors = stylize_paths(Stylizer(small_net, device="cpu"), src, tmp_path / "a.png", progress=False)
    assert written == [] and len(errors) == 1 and "tile_size" in errors[0] and "\n" not in errors[0]
    written, errors = stylize_paths(Stylizer(small_net, device="cpu", tile_size=64), src, tmp_path / "b.png",
                                    progress=False)
    assert Image.MAX_IMAGE_PIXELS == 1000  # the guard is back for every other file
    assert errors == [] and load_image(written[0], allow_huge=True).size == (80, 60)
