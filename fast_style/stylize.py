"""Stylization: the :class:`Stylizer` API and the file/folder driver that scripts/stylize.py uses."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.color import MODES as COLOR_MODES
from fast_style.color import match_color, preserve_luminance
from fast_style.config import resolve_device
from fast_style.errors import ConfigError, FastStyleError, ImageError
from fast_style.images import is_image_file, load_image, save_image, scale_image, to_pil, to_tensor
from fast_style.models import ImageTransformNet

log = logging.getLogger(__name__)


class Stylizer:
    """A trained network ready for inference: ``Stylizer.from_checkpoint(path)(image)``.

    Accepts a PIL image (returns PIL RGB) or a float tensor in [0, 1] of shape (3, H, W) or
    (B, 3, H, W) (returns the same shape, on the input's device).

    Options applied after the network, so one checkpoint serves them all:
    ``strength`` in [0, 1] blends the stylization with the photo (1 = full style);
    ``preserve_color`` = ``luminance`` keeps the photo's chroma, ``histogram`` pulls the output's
    colour distribution back to the photo's (see :mod:`fast_style.color`). For multi-style
    checkpoints, ``style_weights`` selects or mixes the styles (see :meth:`from_checkpoint`).
    """

    def __init__(
        self,
        model: ImageTransformNet,
        style: str = "style",
        device: str | torch.device = "auto",
        strength: float = 1.0,
        preserve_color: str | None = None,
        style_weights: torch.Tensor | None = None,
    ):
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength must be in [0, 1], got {strength!r}")
        if preserve_color not in (None, *COLOR_MODES):
            raise ConfigError(f"preserve_color={preserve_color!r}: choose {' or '.join(COLOR_MODES)} (or null)")
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model = model.to(self.device).eval()
        self.style = style
        self.strength = strength
        self.preserve_color = preserve_color
        self.style_weights = style_weights

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "auto",
        style: str | None = None,
        style_mix: dict[str, float] | None = None,
        **options: object,
    ) -> Stylizer:
        """Load a checkpoint. Multi-style ones need ``style=<name>`` or ``style_mix={name: weight}``."""
        state = load_checkpoint(path)
        model = model_from_checkpoint(state)
        names = [str(n) for n in state.get("styles", [state.get("style", "style")])]
        weights = None
        label = names[0]
        if len(names) > 1 or style or style_mix:
            mix = style_mix or ({style: 1.0} if style else None)
            if not mix:
                raise ConfigError(f"{path} holds {len(names)} styles ({', '.join(names)}): pass style=<name> or style_mix")
            unknown = [n for n in mix if n not in names]
            if unknown:
                raise ConfigError(f"style(s) {unknown} not in {path}; it holds: {', '.join(names)}")
            if len(names) > 1:
                weights = torch.tensor([float(mix.get(n, 0.0)) for n in names])
                if not weights.sum() > 0 or (weights < 0).any():
                    raise ConfigError("style_mix weights must be >= 0 and not all 0")
            label = "+".join(n for n in names if mix.get(n, 0.0) > 0)
        return cls(model, style=label, device=device, style_weights=weights, **options)  # type: ignore[arg-type]

    def __call__(self, image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        if isinstance(image, Image.Image):
            return to_pil(self.stylize_batch(to_tensor(image).unsqueeze(0))[0])
        if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise TypeError("Stylizer takes a PIL image or a float tensor of shape (3, H, W) or (B, 3, H, W)")
        batch = image.unsqueeze(0) if image.dim() == 3 else image
        out = self.stylize_batch(batch).to(image.device)
        return out[0] if image.dim() == 3 else out

    def stylize_batch(self, batch: torch.Tensor, model: ImageTransformNet | None = None) -> torch.Tensor:
        """Network + options on a (B, 3, H, W) batch; ``model`` swaps in a variant of the network
        (the video path's temporally smoothed copy) while keeping every option."""
        x = batch.to(self.device, dtype=torch.float32)
        y = (model or self.model).stylize(x, self.style_weights)
        if self.strength < 1.0:
            y = torch.lerp(x, y, self.strength)
        if self.preserve_color == "luminance":
            y = preserve_luminance(y, x)
        elif self.preserve_color == "histogram":
            y = match_color(y, x)
        return y


def plan_outputs(inputs: Path, output: Path | None, style: str) -> list[tuple[Path, Path]]:
    """Pair every input image with its output path; refuse anything that would overwrite an input."""
    inputs = inputs.expanduser()
    if not inputs.exists():
        raise ConfigError(f"input={inputs}: no such file or folder")
    if inputs.is_dir():
        files = sorted(p for p in inputs.rglob("*") if p.is_file() and is_image_file(p))
        if not files:
            raise ConfigError(f"input={inputs}: no images (.jpg .jpeg .png .webp .bmp) in this folder")
        out_dir = output or Path("stylized")
        if is_image_file(out_dir) and not out_dir.is_dir():
            raise ConfigError(f"output={out_dir}: input is a folder, so output must be a folder too")
        # a.jpg and a.png in one folder keep their extension in the name, so neither is lost
        stems = Counter((f.parent, f.stem) for f in files)

        def name(f: Path) -> str:
            stem = f.stem if stems[(f.parent, f.stem)] == 1 else f"{f.stem}_{f.suffix.lstrip('.')}"
            return f"{stem}_{style}.png"

        pairs = [(f, out_dir / f.relative_to(inputs).parent / name(f)) for f in files]
    else:
        if output is None:
            out = Path("stylized") / f"{inputs.stem}_{style}.png"
        elif output.is_dir() or not output.suffix:
            out = output / f"{inputs.stem}_{style}.png"
        else:
            out = output
        pairs = [(inputs, out)]
    sources = {p.resolve() for p, _ in pairs}
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst.resolve() in sources:
            raise ConfigError(f"output {dst} would overwrite the input image {src}; choose another output")
        if dst.resolve() in seen:
            first = seen[dst.resolve()]
            raise ConfigError(f"{first} and {src} would both be written to {dst}; rename one of them")
        seen[dst.resolve()] = src
    return pairs


def stylize_paths(
    stylizer: Stylizer,
    inputs: str | os.PathLike,
    output: str | os.PathLike | None = None,
    scale: float = 1.0,
    batch_size: int = 4,
    progress: bool = True,
) -> tuple[list[Path], list[str]]:
    """Stylize a file or every image of a folder. Returns (written files, one-line errors).

    Consecutive images of equal size (after ``scale``) are batched; one bad file is
    reported and skipped while the rest go on.
    """
    if not scale > 0:
        raise ConfigError(f"scale must be > 0, got {scale!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
    pairs = plan_outputs(Path(inputs), Path(output) if output else None, stylizer.style)
    written: list[Path] = []
    errors: list[str] = []
    pending: list[tuple[torch.Tensor, Path]] = []  # consecutive images of one size (bounded memory)

    def flush(items: list[tuple[torch.Tensor, Path]]) -> None:
        out = stylizer.stylize_batch(torch.stack([t for t, _ in items])).cpu()
        for image, (_, dst) in zip(out, items):
            try:
                written.append(save_image(image, dst))
            except (ImageError, OSError) as e:
                errors.append(f"{dst}: cannot write ({e})")
        bar.update(len(items))

    with tqdm(total=len(pairs), desc=f"stylize ({stylizer.style})", unit="img", disable=not progress) as bar:
        for src, dst in pairs:
            try:
                img = scale_image(load_image(src), scale)
            except ImageError as e:
                errors.append(str(e))
                bar.update(1)
                continue
            tensor = to_tensor(img)
            if pending and (pending[0][0].shape != tensor.shape or len(pending) == batch_size):
                flush(pending)
                pending.clear()
            pending.append((tensor, dst))
        if pending:
            flush(pending)
    for message in errors:
        log.error(message)
    return written, errors


__all__ = ["FastStyleError", "Stylizer", "plan_outputs", "stylize_paths"]
