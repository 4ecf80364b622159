"""Video: frame count, frame rate and audio survive; temporal smoothing reduces flicker.

The network is a small random-init ImageTransformNet (untrained): these tests check the video
plumbing and the de-flicker mechanism, not the look (docs/ has numbers for a trained one).
"""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from fast_style.color import rgb_to_ycbcr
from fast_style.data import load_crop
from fast_style.stylize import Stylizer
from tests.helpers import perturbed, run_script

av = pytest.importorskip("av")


def make_panned_clip(photo: Path, path: Path, frames: int = 20, fps: int = 12, audio: bool = True) -> np.ndarray:
    """A slow pan (1 px per frame) across a real photo, with a 440 Hz tone; returns the frames."""
    big = (load_crop(photo, 160).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    clip = np.stack([big[30:94, i : i + 96] for i in range(frames)])
    out = av.open(str(path), mode="w")
    v = out.add_stream("libx264", rate=fps)
    v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
    a = out.add_stream("aac", rate=22050) if audio else None
    for i, img in enumerate(clip):
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        for p in v.encode(frame):
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    if a is not None:
        t = np.arange(int(22050 * frames / fps)) / 22050
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for start in range(0, tone.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 22050, start
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    out.close()
    return clip


def read_frames(path: Path) -> tuple[np.ndarray, Fraction, bool]:
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
        return frames, c.streams.video[0].average_rate, bool(c.streams.audio)


@pytest.fixture(scope="module")
def stylizer():
    return Stylizer(perturbed(scale=0.1), style="test", device="cpu")


def test_video_keeps_frames_rate_and_audio(stylizer, photos_val, tmp_path):
    from fast_style.video import stylize_video

    src = tmp_path / "clip.mp4"
    make_panned_clip(sorted(photos_val.iterdir())[0], src)
    report = stylize_video(stylizer, src, tmp_path / "out" / "clip_test.mp4", batch_size=3, progress=False)
    frames, fps, has_audio = read_frames(report.output)
    assert report.frames == len(frames) == 20
    assert fps == 12 and has_audio and report.has_audio
    assert frames.shape[1:] == (64, 96, 3)
    assert not list((tmp_path / "out").glob(".*partial*"))  # no temp file left
    # the output really is the network's stylization of each frame, in order. Compared on
    # luminance: H.264's 4:2:0 chroma subsampling blurs this untrained net's pixel-level noise.
    src_frames, _, _ = read_frames(src)
    got = rgb_to_ycbcr(torch.from_numpy(frames[5]).permute(2, 0, 1).float() / 255)[0]
    errors = [
        (got - rgb_to_ycbcr(stylizer(torch.from_numpy(src_frames[k]).permute(2, 0, 1).float() / 255))[0])
        .abs().mean().item()
        for k in (4, 5, 6)
    ]
    assert errors[1] < 0.05 and errors[1] < min(errors[0], errors[2])


def test_temporal_smoothing_reduces_flicker(stylizer, photos_val, tmp_path):
    from fast_style.measure import flicker
    from fast_style.video import stylize_video

    src = tmp_path / "clip.mp4"
    make_panned_clip(sorted(photos_val.iterdir())[1], src, audio=False)
    src_frames, _, _ = read_frames(src)
    plain = stylize_video(stylizer, src, tmp_path / "plain.mp4", progress=False)
    smooth = stylize_video(stylizer, src, tmp_path / "smooth.mp4", temporal_smoothing=0.9, progress=False)
    base = flicker(src_frames)
    f_plain = flicker(read_frames(plain.output)[0]) - base
    f_smooth = flicker(read_frames(smooth.output)[0]) - base
    assert f_smooth < f_plain


def test_smoothing_with_alpha_zero_is_plain_instance_norm(stylizer):
    from fast_style.video import with_temporal_smoothing

    x = torch.rand(3, 3, 32, 32)
    smoothed = with_temporal_smoothing(stylizer.model, 0.0)
    with torch.no_grad():
        assert torch.allclose(smoothed(x), stylizer.model(x), atol=1e-5)


@pytest.mark.slow  # a script in a subprocess
def test_stylize_script_takes_a_video(stylizer, photos_val, tmp_path):

    from fast_style.checkpoint import save_checkpoint

    ckpt = save_checkpoint(
        {"model_config": stylizer.model.config.to_dict(), "model": stylizer.model.state_dict(), "style": "test"},
        tmp_path / "m.pt",
    )
    src = tmp_path / "clip.mp4"
    make_panned_clip(sorted(photos_val.iterdir())[2], src, frames=8)
    result = run_script("stylize.py", f"ckpt={ckpt}", f"input={src}", "temporal_smoothing=0.5",
                        "preserve_color=luminance", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "8 frames at 12 fps, audio kept" in result.stdout
    frames, fps, has_audio = read_frames(tmp_path / "stylized" / "clip_test.mp4")
    assert len(frames) == 8 and fps == 12 and has_audio
