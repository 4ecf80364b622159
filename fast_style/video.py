"""Video stylization: streamed, batched, original frame rate and audio kept, optional de-flicker.

PyAV (FFmpeg bindings, wheels bundle FFmpeg) is used instead of torchvision.io's video API,
which torchvision has deprecated, and instead of OpenCV, which cannot carry the audio track.
Frames are decoded, stylized in batches and encoded as they come, so memory does not grow with
the clip's length.

Flicker: a feed-forward network stylizes each frame independently, and instance norm's
per-frame statistics jump with small content changes, so colours and strokes shimmer.
``temporal_smoothing=a`` replaces every instance norm's statistics by an exponential moving
average across frames (weight ``a`` on the past): the one mitigation that needs no retraining.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fast_style.errors import ConfigError, FastStyleError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


class SmoothedInstanceNorm(nn.Module):
    """Instance norm whose mean/variance are an EMA over the frames seen so far (in order)."""

    def __init__(self, norm: nn.InstanceNorm2d, alpha: float):
        super().__init__()
        self.norm, self.alpha = norm, alpha
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        smoothed_m, smoothed_v = [], []
        for i in range(x.shape[0]):  # frames in time order; stats are (C,1,1): cheap
            if self.mean is None:
                self.mean, self.var = mean[i], var[i]
            else:
                self.mean = self.alpha * self.mean + (1 - self.alpha) * mean[i]
                self.var = self.alpha * self.var + (1 - self.alpha) * var[i]
            smoothed_m.append(self.mean)
            smoothed_v.append(self.var)
        m, v = torch.stack(smoothed_m), torch.stack(smoothed_v)
        y = (x - m) * torch.rsqrt(v + self.norm.eps)
        if self.norm.affine:
            y = y * self.norm.weight.view(1, -1, 1, 1) + self.norm.bias.view(1, -1, 1, 1)
        return y


def with_temporal_smoothing(model: nn.Module, alpha: float) -> nn.Module:
    """A copy of ``model`` whose instance norms carry statistics across calls (one video)."""
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                setattr(module, child_name, SmoothedInstanceNorm(child, alpha))
    return model


def flicker(frames: list[np.ndarray] | np.ndarray | torch.Tensor, shift: int = 0) -> float:
    """Mean absolute difference between consecutive frames (0-1 scale). ``frames``: 8-bit
    (T, H, W, 3) arrays as decoded, or a float (T, 3, H, W) tensor in [0, 1].

    ``shift`` (tensors only): motion-compensated for a known pan of ``shift`` px per frame to the
    right (:func:`panned_clip`): frame t+1 minus frame t moved left by ``shift``, so only changes
    that the motion does not explain count (0 for the input clip itself)."""
    if isinstance(frames, torch.Tensor):
        if len(frames) < 2:
            return 0.0
        a, b = frames[1:].float(), frames[:-1].float()
        if shift:
            a, b = a[..., : a.shape[-1] - shift], b[..., shift:]
        return float((a - b).abs().mean())
    if shift:
        raise ValueError("flicker(shift=...) takes a (T, 3, H, W) tensor")
    a = np.asarray(frames, dtype=np.float32) / 255.0
    return float(np.abs(np.diff(a, axis=0)).mean()) if len(a) > 1 else 0.0


def panned_clip(photo: torch.Tensor, frames: int = 48, size: tuple[int, int] = (240, 320), step: int = 1,
                noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A test clip made from one photo (3, H, W): a window of ``size`` (h, w) panned ``step`` px
    per frame to the right (``step=0``: a static shot), plus optional Gaussian sensor noise of
    std ``noise`` (0-1 scale), rounded to 8 bits like a decoded video. Returns (T, 3, h, w)."""
    h, w = size
    if photo.shape[-2] < h or photo.shape[-1] < w + step * (frames - 1):
        raise ConfigError(f"photo {tuple(photo.shape[-2:])} too small for a {h}x{w} window panned "
                          f"{step} px x {frames} frames")
    top = (photo.shape[-2] - h) // 2
    clip = torch.stack([photo[:, top : top + h, i * step : i * step + w] for i in range(frames)])
    if noise > 0:
        g = torch.Generator().manual_seed(seed)
        clip = clip + noise * torch.randn(clip.shape, generator=g)
    return clip.clamp(0, 1).mul(255).round().div(255)


def stylize_frames(stylizer, frames: torch.Tensor, temporal_smoothing: float = 0.0, batch_size: int = 4) -> torch.Tensor:
    """Stylize a (T, 3, H, W) clip in memory exactly as :func:`stylize_video` does (frames in order,
    batches of ``batch_size``, the smoothed network copy, every Stylizer option, 8-bit output),
    without the codec. Returns (T, 3, H, W) on the CPU."""
    if not 0.0 <= temporal_smoothing < 1.0:
        raise ConfigError(f"temporal_smoothing must be in [0, 1), got {temporal_smoothing}")
    model = with_temporal_smoothing(stylizer.model, temporal_smoothing) if temporal_smoothing > 0 else None
    out = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            y = stylizer.stylize_batch(frames[start : start + batch_size], model=model)
            out.append(y.mul(255).round().div(255).cpu())
    return torch.cat(out)


def flicker_report(stylizer, clip: torch.Tensor, smoothing: Sequence[float] = (0.0, 0.5, 0.8, 0.9, 0.95),
                   batch_size: int = 4, shift: int = 0) -> list[dict[str, float]]:
    """Flicker of the stylized clip for each ``temporal_smoothing`` value. Lower is steadier.

    ``flicker``: mean |frame t+1 - frame t| of the output; ``input``: the same for the input clip;
    ``excess``: flicker - input (what the stylization adds to what the motion or noise causes);
    ``compensated``: the output's flicker with the pan of ``shift`` px per frame undone
    (:func:`flicker`; the input's is 0 for a noiseless pan), i.e. change the motion does not explain."""
    base = flicker(clip)
    rows = []
    for alpha in smoothing:
        out = stylize_frames(stylizer, clip, alpha, batch_size)
        f = flicker(out)
        rows.append({"temporal_smoothing": float(alpha), "input": base, "flicker": f, "excess": f - base,
                     "compensated": flicker(out, shift=shift), "input_compensated": flicker(clip, shift=shift)})
    return rows


@dataclass
class VideoReport:
    output: Path
    frames: int
    fps: Fraction
    has_audio: bool


def stylize_video(
    stylizer,  # fast_style.stylize.Stylizer (not imported: stylize imports this module)
    src: str | os.PathLike,
    dst: str | os.PathLike,
    batch_size: int | str = "auto",
    temporal_smoothing: float = 0.0,
    crf: int = 18,
    progress: bool = True,
) -> VideoReport:
    """Stylize every frame of ``src`` into ``dst`` (H.264, same frame rate; audio copied as is)."""
    try:
        import av
    except ImportError:
        raise FastStyleError("video needs PyAV: pip install av") from None
    if not 0.0 <= temporal_smoothing < 1.0:
        raise ConfigError(f"temporal_smoothing must be in [0, 1), got {temporal_smoothing}")
    from fast_style.stylize import resolve_batching  # stylize imports this module

    batch_size, _ = resolve_batching(stylizer.device, batch_size, 0)
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise ConfigError(f"output {dst} would overwrite the input video")
    # None: the Stylizer's own network (compiled if it was asked to be)
    model = with_temporal_smoothing(stylizer.model, temporal_smoothing) if temporal_smoothing > 0 else None
    try:
        inp = av.open(str(src))
    except (av.error.FFmpegError, OSError) as e:
        raise FastStyleError(f"{src}: cannot open video ({e})") from None
    if not inp.streams.video:
        raise FastStyleError(f"{src}: has no video stream")
    vin = inp.streams.video[0]
    ain = inp.streams.audio[0] if inp.streams.audio else None
    fps = vin.average_rate or Fraction(25)
    try:  # the pixel cap, before any frame is decoded or the output opened
        stylizer.check_size(vin.codec_context.width, vin.codec_context.height, what=str(src))
    except FastStyleError:
        inp.close()
        raise
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
    out = av.open(str(tmp), mode="w")
    vout = out.add_stream("libx264", rate=fps)
    vout.width, vout.height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
    vout.pix_fmt = "yuv420p"
    vout.options = {"crf": str(crf)}
    aout = out.add_stream_from_template(ain) if ain is not None else None
    n_frames = 0
    batch: list[np.ndarray] = []

    def flush() -> None:
        nonlocal n_frames
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float().div_(255)
        with torch.inference_mode():
            y = stylizer.stylize_batch(x, model=model)  # strength, colour and style options apply
            arr = y.mul(255).round_().byte().permute(0, 2, 3, 1).cpu().numpy()
        for frame_rgb in arr:
            frame = av.VideoFrame.from_ndarray(frame_rgb[: vout.height, : vout.width], format="rgb24")
            frame.pts = n_frames
            for packet in vout.encode(frame):
                out.mux(packet)
            n_frames += 1
            bar.update(1)
        batch.clear()

    total = vin.frames or None
    try:
        with tqdm(total=total, desc=f"video ({stylizer.style})", unit="frame", disable=not progress) as bar:
            streams = [s for s in (vin, ain) if s is not None]
            for packet in inp.demux(*streams):
                if packet.stream is ain:
                    if packet.dts is not None:
                        packet.stream = aout
                        out.mux(packet)
                    continue
                for frame in packet.decode():
                    batch.append(frame.to_ndarray(format="rgb24"))
                    if len(batch) == batch_size:
                        flush()
            if batch:
                flush()
            for packet in vout.encode(None):
                out.mux(packet)
        out.close()
        inp.close()
        os.replace(tmp, dst)
    except BaseException:
        out.close()
        inp.close()
        tmp.unlink(missing_ok=True)
        raise
    return VideoReport(dst, n_frames, fps, aout is not None)
