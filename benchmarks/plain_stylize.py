"""The baseline a user would write without fast-style's inference path: a plain fp32 eager network,
one image at a time. ``python benchmarks/plain_stylize.py CKPT INPUT_FOLDER OUTPUT_FOLDER``.

benchmarks/bench.py --folder times it against ``scripts/stylize.py`` as whole processes (start-up,
decoding and PNG writing included), so the comparison is what a user waits for, not just the
network. The network is the textbook one (nearest upsample, then a 3x3 conv in the decoder)."""

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.models.transformer import UpsampleConvNormReLU


def main() -> None:
    ckpt, src, dst = (Path(a) for a in sys.argv[1:4])
    net = model_from_checkpoint(load_checkpoint(ckpt)).eval()
    for m in net.modules():
        if isinstance(m, UpsampleConvNormReLU):
            m.fast_upsample = False  # the textbook decoder
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255).permute(2, 0, 1)
        with torch.no_grad():
            y = net(x[None])[0].clamp(0, 1)
        out = (y.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(out).save(dst / f"{path.stem}.png")
        print(dst / f"{path.stem}.png")


if __name__ == "__main__":
    main()
