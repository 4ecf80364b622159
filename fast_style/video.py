"""Video stylization: streamed, batched, original frame rate and audio kept, optional de-flicker.

PyAV (FFmpeg bindings, wheels bundle FFmpeg) is used instead of torchvision.io's video API,
which torchvision has deprecated, and instead of OpenCV, which cannot carry the audio track.
Frames are decoded, stylized in batches and encoded as they come, so memory does not grow with
the clip's length.

Flicker: a feed-forward network stylizes each frame independently, and instance norm's
per-frame statistics jump with small content changes, so colours and strokes shimmer.
``temporal_smoothing=a`` replaces every instance norm's statistics by an exponential moving
average across frames (weight ``a`` on the past): the one mitigation that needs no retraining.
Measuring it (a panned test clip, the flicker metric) is :mod:`fast_style.measure`'s job.
"""

from __future__ import annotations

import copy
import logging
import os
from contextlib import suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fast_style.errors import ConfigError, FastStyleError, Interrupted, first_line
from fast_style.fileio import safe_name
from fast_style.stylize import Stylizer, resolve_batching

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def video_output(src: str | os.PathLike, output: str | os.PathLike | None, style: str) -> Path:
    """Where the stylized ``src`` goes, checked before any work: ``output`` as a video file, or as a
    folder (an existing one, or a name without extension, as for images) that receives
    ``<stem>_<style>.mp4``; default ``stylized/<stem>_<style>.mp4``. ``style`` comes from a
    checkpoint: :func:`fast_style.fileio.safe_name`. Anything else (``x.png``) is one line."""
    src = Path(src)
    name = f"{src.stem}_{safe_name(style)}.mp4"
    if output is None or str(output) == "":
        out = Path("stylized") / name
    else:
        out = Path(output).expanduser()
        if out.is_dir() or not out.suffix:
            out = out / name
        elif not is_video_file(out):
            raise ConfigError(f"output={output}: a video is written as a video file "
                              f"({' '.join(VIDEO_EXTENSIONS)}) or into a folder")
    if out.resolve() == src.resolve():
        raise ConfigError(f"output {out} would overwrite the input video")
    return out


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


def check_temporal_smoothing(alpha: float) -> None:
    """``temporal_smoothing`` is the EMA weight on the past: in [0, 1), 1 would freeze the first frame."""
    if not 0.0 <= alpha < 1.0:
        raise ConfigError(f"temporal_smoothing must be in [0, 1), got {alpha}")


class SmoothedNet:
    """Backend (:class:`fast_style.backends.Backend`) for one video with ``temporal_smoothing=alpha``:
    a copy of the network whose instance norms carry an EMA of their statistics across frames
    (:func:`with_temporal_smoothing`), style bound, output clamped.

    Stateful on purpose: frames must come in time order, and each video needs a fresh one. It runs
    whole frames on eager torch (the EMA spans calls, which neither the exported graph nor the
    per-layer statistics of tiles have a place for)."""

    name = "torch"

    def __init__(self, model: nn.Module, alpha: float, style_weights: torch.Tensor | None = None):
        check_temporal_smoothing(alpha)
        self.model, self.style_weights = with_temporal_smoothing(model, alpha), style_weights

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.stylize(batch, self.style_weights)


def frame_stylizer(stylizer: Stylizer, temporal_smoothing: float) -> Stylizer:
    """What stylizes one video's frames, in order, with every option of ``stylizer``: the Stylizer
    itself when ``temporal_smoothing`` is 0 (its backend: onnxruntime, compiled, tiled), else its
    options around a fresh :class:`SmoothedNet` (one warning line if that leaves onnxruntime)."""
    check_temporal_smoothing(temporal_smoothing)
    if temporal_smoothing == 0:
        return stylizer
    if stylizer.backend == "onnxruntime":
        stylizer.note("temporal_smoothing runs on torch (it carries norm statistics across frames, "
                      "outside the exported graph)")
    return stylizer.with_network(SmoothedNet(stylizer.model, temporal_smoothing, stylizer.style_weights))


def with_temporal_smoothing(model: nn.Module, alpha: float) -> nn.Module:
    """A copy of ``model`` whose instance norms carry statistics across calls (one video)."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                setattr(module, child_name, SmoothedInstanceNorm(child, alpha))
    return model


@dataclass
class VideoReport:
    output: Path
    frames: int
    fps: Fraction
    has_audio: bool


def stylize_video(
    stylizer: Stylizer,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    batch_size: int | str = "auto",
    temporal_smoothing: float = 0.0,
    crf: int = 18,
    progress: bool = True,
) -> VideoReport:
    """Stylize every frame of ``src`` into ``dst`` (H.264, same frame rate; audio copied as is)."""
    try:
        import av  # noqa: F401 - the helpers import it again; this is the one-line refusal
    except ImportError:
        raise FastStyleError("video needs PyAV: pip install av") from None
    check_temporal_smoothing(temporal_smoothing)
    batch_size, _ = resolve_batching(stylizer.device, batch_size, 0)
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise ConfigError(f"output {dst} would overwrite the input video")
    inp = _open_video(src, stylizer)
    vin = inp.streams.video[0]
    ain = inp.streams.audio[0] if inp.streams.audio else None
    fps = vin.average_rate or Fraction(25)
    frames = frame_stylizer(stylizer, temporal_smoothing)  # a fresh smoothed network per video
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
    bar = tqdm(total=vin.frames or None, desc=f"video ({stylizer.style})", unit="frame", disable=not progress)
    writer = _VideoWriter(tmp, vin, ain, fps, crf, frames, batch_size, bar)
    try:
        stopped = _transcode(inp, vin, ain, writer)
        writer.close()
        inp.close()
        if writer.n_frames == 0 and stopped:
            if stopped == "interrupted":
                raise Interrupted("interrupted before the first frame was stylized; nothing written")
            raise FastStyleError(f"{src}: no frame could be stylized ({stopped})")
        os.replace(tmp, dst)
    except BaseException:
        writer.close()
        inp.close()
        tmp.unlink(missing_ok=True)
        raise
    if stopped == "interrupted":
        raise Interrupted(f"interrupted: the {writer.n_frames} frames stylized so far are kept in {dst}")
    if stopped:
        log.warning("%s: %s; the %d frames before it are kept in %s", src, stopped, writer.n_frames, dst)
    return VideoReport(dst, writer.n_frames, fps, writer.aout is not None)


def _open_video(src: Path, stylizer: Stylizer):
    """``src`` opened for reading, once it is known to hold a video stream within the pixel cap."""
    import av

    try:
        inp = av.open(str(src))
    except (av.error.FFmpegError, OSError) as e:
        raise FastStyleError(f"{src}: cannot open video ({e})") from None
    if not inp.streams.video:
        raise FastStyleError(f"{src}: has no video stream")
    vin = inp.streams.video[0]
    try:  # the pixel cap, before any frame is decoded or the output opened
        stylizer.check_size(vin.codec_context.width, vin.codec_context.height, what=str(src))
    except FastStyleError:
        inp.close()
        raise
    return inp


class _VideoWriter:
    """The output file: H.264 (even width and height, yuv420p) at the input's frame rate, a copy
    of its audio stream; frames are stylized in batches of ``batch_size`` and encoded in order."""

    def __init__(self, path: Path, vin, ain, fps: Fraction, crf: int, frames: Stylizer, batch_size: int, bar: tqdm):
        import av

        self.frames, self.batch_size, self.bar = frames, batch_size, bar
        self.out = av.open(str(path), mode="w")
        self.vout = self.out.add_stream("libx264", rate=fps)
        self.vout.width, self.vout.height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
        self.vout.pix_fmt = "yuv420p"
        self.vout.options = {"crf": str(crf)}
        self.aout = self.out.add_stream_from_template(ain) if ain is not None else None
        self.batch: list[np.ndarray] = []
        self.n_frames = 0

    def copy_audio(self, packet) -> None:
        if packet.dts is not None:
            packet.stream = self.aout
            self.out.mux(packet)

    def add(self, rgb_frames: list[np.ndarray]) -> None:
        """Queue decoded frames; a full batch is stylized and encoded."""
        self.batch.extend(rgb_frames)
        if len(self.batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Stylize and encode the queued frames."""
        import av

        x = torch.from_numpy(np.stack(self.batch)).permute(0, 3, 1, 2).float().div_(255)
        with torch.inference_mode():
            y = self.frames.stylize_batch(x)  # strength, colour and style options apply
            arr = y.mul(255).round_().byte().permute(0, 2, 3, 1).cpu().numpy()
        for frame_rgb in arr:
            frame = av.VideoFrame.from_ndarray(frame_rgb[: self.vout.height, : self.vout.width], format="rgb24")
            frame.pts = self.n_frames
            for packet in self.vout.encode(frame):
                self.out.mux(packet)
            self.n_frames += 1
            self.bar.update(1)
        self.batch.clear()

    def finish(self) -> None:
        """Encode what is still queued and drain the encoder."""
        if self.batch:
            self.flush()
        for packet in self.vout.encode(None):
            self.out.mux(packet)

    def close(self) -> None:
        """Close the progress bar and the file (again after an error: both allow it)."""
        self.bar.close()
        self.out.close()


def _transcode(inp, vin, ain, writer: _VideoWriter) -> str | None:
    """Every frame of ``inp`` through ``writer``, its audio copied. Returns why reading stopped
    early (a damaged stream: the frames decoded so far are kept; Ctrl-C), or None."""
    import av

    stopped: str | None = None
    try:
        for packet in inp.demux(*[s for s in (vin, ain) if s is not None]):
            if packet.stream is ain:
                writer.copy_audio(packet)
                continue
            for frame in packet.decode():
                writer.add([frame.to_ndarray(format="rgb24")])
    except av.error.FFmpegError as e:  # cut mid-stream, garbage packets: keep what decoded
        stopped = f"cannot decode past frame {writer.n_frames + len(writer.batch)} ({first_line(e, 100)})"
        held = []
        with suppress(av.error.FFmpegError, IndexError, ValueError):  # frames the decoder still holds
            held = [f.to_ndarray(format="rgb24") for f in vin.codec_context.decode(None)]
        for i in range(0, len(held), writer.batch_size):
            writer.add(held[i : i + writer.batch_size])
    except KeyboardInterrupt:
        writer.batch.clear()
        stopped = "interrupted"
    writer.finish()
    return stopped
