"""Issue 25's adversarial probes of stylize, export, convert, checkpoints, the ONNX export cache and
preprocess: each test feeds what the probe fed (a crafted checkpoint, a planted cache entry, a bad
value) and checks the refusal or the safe result; docs/RELIABILITY.md lists them.

Networks are tiny random-init ones (width 8, one residual block): these check file handling and
refusals, not images. Scripts run in-process (:func:`run_in_process`): the same ``__main__`` code
as ``python scripts/<name>.py``, without a second torch start-up.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import fast_style.stylize as stylize_module
from fast_style.checkpoint import check_output_file, load_checkpoint, model_from_checkpoint, save_checkpoint
from fast_style.errors import CheckpointError, ConfigError, Interrupted
from fast_style.export import export_checkpoint
from fast_style.fileio import SHIPPED_DIR, atomic_write, cache_root, safe_name
from fast_style.models import TransformerConfig
from fast_style.onnx_backend import OnnxNet, cache_key, model_digest, onnx_cache_dir, read_verified
from fast_style.shards import preprocess
from fast_style.stylize import Stylizer, check_style_mix, load_network, normalized_weights, plan_outputs, stylize_paths
from tests.helpers import SCRIPTS, good_photos, perturbed


def tiny_checkpoint(path: Path, seed: int = 0, **extra: object) -> Path:
    model = perturbed(seed=seed)
    return save_checkpoint({"model_config": model.config.to_dict(), "model": model.state_dict(),
                            "style": "tiny", **extra}, path)


def multi_checkpoint(path: Path) -> Path:
    model = perturbed(TransformerConfig(width=8, n_residual=1, n_styles=2), scale=0.3)
    return save_checkpoint({"model_config": model.config.to_dict(), "model": model.state_dict(),
                            "style": "a+b", "styles": ["a", "b"]}, path)


def run_in_process(script: str, *args: str, monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str]:
    """``python scripts/<script> <args>`` in this process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", [str(SCRIPTS / script), *args])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "")
    code = 0
    try:
        runpy.run_path(str(SCRIPTS / script), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *words: str) -> None:
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (code, err)
    for word in words:
        assert word in err, (word, err)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return next(good_photos(tmp_path / "photos", n=1).iterdir())


# ---- 1. names from a checkpoint never steer a path ------------------------------------------------


def test_safe_name_keeps_names_inside_their_folder():
    assert safe_name("/../../../victim") == "victim"
    assert safe_name("..") == "style" and safe_name("") == "style" and safe_name("a/b\\c\x1b[2J") == "a_b_c__2J"
    assert safe_name("starry_night+the_scream") == "starry_night+the_scream"
    assert safe_name("Été") == "Été" and len(safe_name("x" * 500)) == 100


def test_style_name_from_a_checkpoint_cannot_write_outside_the_output_folder(tmp_path, photo, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "evil.pt", style="/../../../victim")
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    stylizer = Stylizer.from_checkpoint(ckpt, device="cpu", backend="torch")
    for output in (None, tmp_path / "out"):  # default stylized/ and an explicit folder
        written, errors = stylize_paths(stylizer, photo, output, progress=False)
        folder = (output or work / "stylized").resolve()
        assert not errors and written[0].resolve().parent == folder, written
        assert written[0].name == f"{photo.stem}_victim.png"
    assert not list(tmp_path.glob("victim*")) and not list(tmp_path.parent.glob("victim*"))
    # folders: the same one function names every output
    pairs = plan_outputs(photo.parent, tmp_path / "o", "../x")
    assert all((tmp_path / "o").resolve() in dst.resolve().parents for _, dst in pairs)


def test_style_image_names_from_a_checkpoint_stay_in_the_cache(tmp_path, monkeypatch):
    import fast_style.styles as styles

    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path / "cache"))
    written = []
    monkeypatch.setattr(styles, "download", lambda url, dest, timeout=30.0: written.append(dest) or dest)
    stored = {"name": "../../x", "url": "https://example.org/a/painting.jpg", "filename": "../../../evil.jpg"}
    styles.stored_style_image(stored)  # what evaluate does with a checkpoint's config
    assert written[0].resolve().parent == (tmp_path / "cache" / "styles").resolve()
    assert written[0].name == "evil.jpg"


# ---- 2 + 3. never replace a user's file without being told ----------------------------------------


def trained(path: Path, step: int = 10) -> Path:
    model = perturbed()
    return save_checkpoint({"model_config": model.config.to_dict(), "model": model.state_dict(), "style": "s",
                            "step": step, "optimizer": {"state": {}, "param_groups": []}}, path)


def test_convert_refuses_to_replace_a_trained_checkpoint(tmp_path, monkeypatch, capsys):
    from tests.checkpoint.test_corrupt_and_classic import classic_net

    classic = tmp_path / "classic.pth"
    torch.save(classic_net(8, 1).state_dict(), classic)
    monkeypatch.chdir(tmp_path)
    target = trained(tmp_path / "checkpoints" / "starry_night.pt")
    before = target.read_bytes()
    detour = "output=./checkpoints/../checkpoints/starry_night.pt"
    for args in (("style=starry_night",), (f"output={target}",), ("style=starry_night", detour)):
        code, err = run_in_process("convert.py", f"input={classic}", *args, monkeypatch=monkeypatch, capsys=capsys)
        assert_one_line(code, err, "trained checkpoint (step 10)", "overwrite=true")
        assert target.read_bytes() == before
    code, err = run_in_process("convert.py", f"input={classic}", "style=starry_night", "overwrite=true",
                               monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert load_checkpoint(target)["step"] == 0
    code, err = run_in_process("convert.py", f"input={classic}", f"output={classic}", monkeypatch=monkeypatch,
                               capsys=capsys)
    assert_one_line(code, err, "is the input file")


def test_nothing_writes_the_shipped_networks(tmp_path):
    shipped = SHIPPED_DIR / "starry_night.pt"
    before = shipped.stat().st_mtime_ns, shipped.stat().st_size
    link = tmp_path / "pkg"
    link.symlink_to(SHIPPED_DIR)  # another name for the same folder: resolved paths are compared
    for output in (shipped, link / "starry_night.pt", link / "new.onnx"):
        with pytest.raises(ConfigError, match="shipped with fast-style"):
            export_checkpoint("starry_night", "torchscript", output, overwrite=True)
    with pytest.raises(ConfigError, match="shipped"), atomic_write(link / "x.png") as f:
        f.write(b"x")
    with pytest.raises(ConfigError, match="shipped"):
        save_checkpoint({"model_config": {}, "model": {}}, SHIPPED_DIR / "tiny.pt")
    assert (shipped.stat().st_mtime_ns, shipped.stat().st_size) == before
    assert not (SHIPPED_DIR / "new.onnx").exists() and not (SHIPPED_DIR / "tiny.pt").exists()


def test_export_refuses_a_trained_checkpoint_and_its_own_input(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    victim = trained(tmp_path / "victim.pt")
    with pytest.raises(ConfigError, match=r"trained checkpoint \(step 10\)"):
        export_checkpoint(ckpt, "torchscript", victim)
    with pytest.raises(ConfigError, match="is the input file"):
        export_checkpoint(ckpt, "torchscript", tmp_path / "." / "m.pt", overwrite=True)
    with pytest.raises(ConfigError, match="is a folder"):
        check_output_file(tmp_path)
    assert export_checkpoint(ckpt, "torchscript", victim, overwrite=True) == victim  # told: replaced


# ---- 4. the ONNX export cache --------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_networks():
    """Two tiny networks and their real exports, made once for the module (an export is seconds)."""
    from fast_style.export import onnx_bytes
    from fast_style.onnx_backend import OPSET

    nets = perturbed(seed=1), perturbed(seed=2)
    return nets, {model_digest(m): onnx_bytes(m, OPSET, clamp=True) for m in nets}


@pytest.fixture
def exported(two_networks, monkeypatch):
    """The exporter answers from :func:`two_networks`: what is tested is which graph the cache serves."""
    import fast_style.export

    nets, graphs = two_networks
    monkeypatch.setattr(fast_style.export, "onnx_bytes", lambda m, *a, **k: graphs[model_digest(m)])
    return nets


def plant(cache: Path, source: OnnxNet, key: str) -> None:
    """Copy ``source``'s entry (graph and record: its own hash still matches) under ``key``."""
    for suffix in (".onnx", ".json"):
        (cache / f"{key}{suffix}").write_bytes(source.path.with_suffix(suffix).read_bytes())


def test_cache_entry_of_another_network_is_rebuilt_not_served(tmp_path, caplog, exported):
    a, b = exported
    plant(tmp_path, OnnxNet(a, cache=tmp_path), cache_key(b))
    with caplog.at_level(logging.WARNING, "fast_style.onnx_backend"):
        net = OnnxNet(b, cache=tmp_path)
    assert net.exported and "names another network" in caplog.text
    x = torch.rand(1, 3, 24, 32)
    torch.testing.assert_close(net(x), b.stylize(x), atol=2e-4, rtol=0)
    assert read_verified(net.path, net.digest, "fp32")[0] is not None  # rebuilt under its own record


def test_int8_build_never_quantises_another_networks_graph(tmp_path, caplog, monkeypatch, exported):
    import fast_style.onnx_backend as ob

    a, b = exported
    plant(tmp_path, OnnxNet(a, cache=tmp_path), cache_key(b, "fp32"))
    monkeypatch.setattr(ob, "quantize_int8", lambda data, n_styles=1: data)  # shows which fp32 graph is used
    with caplog.at_level(logging.WARNING, "fast_style.onnx_backend"):
        net = OnnxNet(b, cache=tmp_path, precision="int8")
    assert "names another network" in caplog.text
    x = torch.rand(1, 3, 24, 32)
    torch.testing.assert_close(net(x), b.stylize(x), atol=2e-4, rtol=0)


def test_a_fifo_at_the_cache_key_does_not_hang(tmp_path, caplog, exported):
    model = exported[0]
    key = cache_key(model)
    os.mkfifo(tmp_path / f"{key}.onnx")
    os.mkfifo(tmp_path / f"{key}.json")
    result: list[tuple] = []
    thread = threading.Thread(target=lambda: result.append(read_verified(tmp_path / f"{key}.onnx")), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and result[0] == (None, "unreadable (not a regular file)")
    with caplog.at_level(logging.WARNING, "fast_style.onnx_backend"):
        net = OnnxNet(model, cache=tmp_path)  # skipped with one line, rebuilt (the FIFO is replaced)
    assert net.exported and "not a regular file" in caplog.text


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch, caplog):
    for var in ("FAST_STYLE_ONNX_CACHE", "FAST_STYLE_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert onnx_cache_dir() == tmp_path / "home" / ".cache" / "fast_style" / "onnx"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert onnx_cache_dir() == tmp_path / "xdg" / "fast_style" / "onnx"
    monkeypatch.setenv("FAST_STYLE_CACHE", str(tmp_path / "mine"))
    assert onnx_cache_dir() == tmp_path / "mine" / "onnx"
    monkeypatch.delenv("FAST_STYLE_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "")
    monkeypatch.setattr("fast_style.fileio._temp_cache_noted", False)
    with caplog.at_level(logging.WARNING, "fast_style.fileio"):
        root = cache_root()
    assert not str(root).startswith("/.cache") and root.is_absolute() and "no usable home" in caplog.text


# ---- 5. style_mix --------------------------------------------------------------------------------


@pytest.mark.parametrize("mix", [{"a": float("inf"), "b": 1}, {"a": "abc"}, "abc", {"a": -1, "b": 2}, {"a": 0},
                                 {"a": float("nan")}, {"a": True}])
def test_style_mix_refuses_what_is_not_a_finite_weight(mix):
    with pytest.raises(ConfigError, match="style_mix"):
        check_style_mix(mix)


def test_style_mix_weights_are_relative(tmp_path):
    ckpt = multi_checkpoint(tmp_path / "multi.pt")
    x = torch.rand(1, 3, 32, 40)
    out = {}
    for name, mix in {"percent": {"a": 70, "b": 30}, "fraction": {"a": 0.7, "b": 0.3},
                      "huge": {"a": 7e307, "b": 3e307}}.items():
        stylizer = Stylizer.from_checkpoint(ckpt, device="cpu", style_mix=mix, backend="torch")
        torch.testing.assert_close(stylizer.style_weights, torch.tensor([0.7, 0.3]))
        out[name] = stylizer(x)
        assert out[name].mean() > 0.02  # not the black image of 1e308 weights
    torch.testing.assert_close(out["percent"], out["fraction"])
    torch.testing.assert_close(out["huge"], out["fraction"])
    torch.testing.assert_close(normalized_weights(torch.tensor([1e308, 1e308], dtype=torch.float64)),
                               torch.tensor([0.5, 0.5]))


# ---- 7. checkpoints crafted or damaged: one line, before any allocation ------------------------------


def test_crafted_checkpoints_are_one_line(tmp_path):
    model = perturbed()
    base = {"model_config": model.config.to_dict(), "model": model.state_dict()}
    save_checkpoint({**base, "styles": 5}, tmp_path / "styles5.pt")
    with pytest.raises(CheckpointError, match="styles entry must be a list"):
        load_checkpoint(tmp_path / "styles5.pt")
    huge = {**base, "model_config": {"width": 8, "n_residual": 10**7, "n_styles": 1}}
    t = time.perf_counter()
    with pytest.raises(CheckpointError, match="n_residual=10000000, but the weights hold 1"):
        model_from_checkpoint(huge)
    with pytest.raises(CheckpointError, match="model_config needs"):
        model_from_checkpoint({**base, "model_config": {"width": 10**7, "n_residual": 1, "n_styles": 1}})
    assert time.perf_counter() - t < 2.0  # refused from the shapes, nothing allocated
    nan = {k: v.clone() for k, v in model.state_dict().items()}
    nan["residuals.0.block.0.0.1.weight"].fill_(float("nan"))
    with pytest.raises(CheckpointError, match="not finite"):
        model_from_checkpoint({**base, "model": nan})
    text = tmp_path / "notes.pt"
    text.write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(CheckpointError, match="text file") as info:
        load_checkpoint(text)
    assert "pickled" not in str(info.value)


def test_preprocess_out_an_existing_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        preprocess(good_photos(tmp_path / "p", n=2), tmp_path / "file", image_size=32, workers=0, progress=False)


def test_ctrl_c_in_a_folder_keeps_what_was_written(tmp_path):
    photos = good_photos(tmp_path / "p", n=5)
    stylizer = Stylizer(perturbed(), device="cpu", backend="torch")
    real, calls = stylizer.stylize_batch, []

    def interrupted_on_the_third(batch):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(batch)

    stylizer.stylize_batch = interrupted_on_the_third  # type: ignore[method-assign]
    with pytest.raises(Interrupted, match="2 of 5 image"):
        stylize_paths(stylizer, photos, tmp_path / "out", progress=False)
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    assert not list((tmp_path / "out").glob(".*.tmp"))


# ---- 7. the stylize script: every value checked before the work --------------------------------------


@pytest.mark.parametrize("args, words", [
    (("scale=inf",), ("scale must be a finite number",)),
    (("scale=1e308",), ("MP cap",)),
    (("style_mix={starry_night:abc}",), ("style_mix weight of starry_night",)),
    (("style_mix=abc",), ("style_mix must map",)),
    (("output=x.tiff",), ("output=x.tiff", ".png")),
])
def test_stylize_values_are_refused_before_the_network_starts(args, words, photo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def never(*a, **k):
        raise AssertionError("the Stylizer (and its ONNX export) started before the refusal")

    monkeypatch.setattr(stylize_module.Stylizer, "__init__", never)
    code, err = run_in_process("stylize.py", "ckpt=starry_night", f"input={photo}", *args,
                               monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line(code, err, *words)


def test_load_network_refuses_a_bad_mix_before_building_anything(tmp_path):
    with pytest.raises(ConfigError, match="finite number"):
        load_network(multi_checkpoint(tmp_path / "m.pt"), style_mix={"a": float("inf"), "b": 1})


# ---- 6 + 7. video outputs, scale and a clip cut mid-stream ----------------------------------------


def test_video_output_is_planned_before_the_work(tmp_path):
    from fast_style.video import video_output

    src = tmp_path / "clip.mp4"
    src.write_bytes(b"")
    (tmp_path / "folder").mkdir()
    assert video_output(src, tmp_path / "folder", "/../x") == tmp_path / "folder" / "clip_x.mp4"
    assert video_output(src, tmp_path / "noext", "s") == tmp_path / "noext" / "clip_s.mp4"
    assert video_output(src, None, "s") == Path("stylized") / "clip_s.mp4"
    with pytest.raises(ConfigError, match="video file"):
        video_output(src, tmp_path / "x.png", "s")
    with pytest.raises(ConfigError, match="overwrite the input"):
        video_output(src, src, "s")


def test_video_scale_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    av = pytest.importorskip("av")
    from tests.stylize.test_video import make_panned_clip

    del av
    src = tmp_path / "clip.mp4"
    make_panned_clip(next(good_photos(tmp_path / "p", n=1).iterdir()), src, frames=2, audio=False)
    monkeypatch.chdir(tmp_path)
    code, err = run_in_process("stylize.py", "ckpt=starry_night", f"input={src}", "scale=0.5",
                               monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line(code, err, "scale=0.5 applies to images")
    code, err = run_in_process("stylize.py", "ckpt=starry_night", f"input={src}", "output=x.png",
                               monkeypatch=monkeypatch, capsys=capsys)
    assert_one_line(code, err, "video file")


def test_a_video_cut_mid_stream_keeps_the_frames_already_done(tmp_path, caplog):
    av = pytest.importorskip("av")
    from fast_style.video import stylize_video
    from tests.stylize.test_video import make_panned_clip, read_frames

    photo = tmp_path / "photo.png"
    Image.effect_mandelbrot((200, 160), (-2, -1.5, 1, 1.5), 60).convert("RGB").save(photo)
    make_panned_clip(photo, tmp_path / "clip.mp4", frames=60, audio=False)
    whole = tmp_path / "whole.mp4"  # index first (faststart), so a cut file still opens
    with av.open(str(tmp_path / "clip.mp4")) as i, av.open(str(whole), "w", options={"movflags": "faststart"}) as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                o.mux(packet)
    data = whole.read_bytes()
    mdat = data.index(b"mdat")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: mdat + (len(data) - mdat) // 2])  # the index, half the frames' bytes
    stylizer = Stylizer(perturbed(), device="cpu", backend="torch")
    with caplog.at_level(logging.WARNING, "fast_style.video"):
        report = stylize_video(stylizer, cut, tmp_path / "out.mp4", batch_size=4, progress=False)
    frames, _, _ = read_frames(tmp_path / "out.mp4")
    assert 0 < report.frames == len(frames) < 60
    assert "cannot decode past frame" in caplog.text and "are kept in" in caplog.text
