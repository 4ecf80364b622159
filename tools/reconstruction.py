"""Gatys' reconstructions for docs/QUALITY.md ("What each VGG layer keeps"):

    OMP_NUM_THREADS=1 python tools/reconstruction.py --photo ../shared/data/photos_val/bsds_100007.jpg \
        --style-image ../shared/data/styles/starry_night.jpg --size 128 --max-iter 100

writes two strips into ``--out`` (docs/figures): ``content_reconstruction_<net>.png`` (the photo,
then white noise optimised to match one layer's features, for conv1_2 ... conv5_2) and
``texture_synthesis_<style>_<net>.png`` (the painting, then noise matching the Grams of relu1_1,
then relu1_1+relu2_1, ...), and prints the PSNR of each content reconstruction.

The optimisation is the library's (fast_style.optimize.reconstruct_content, synthesize_texture);
this file only lays the images out.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from fast_style.device import resolve_device
from fast_style.images import image_grid, load_batch, save_image
from fast_style.measure import psnr
from fast_style.models import LossNet, build_loss_net
from fast_style.optimize import (
    CONTENT_RECON_LAYERS,
    GATYS_STYLE_LAYERS,
    reconstruct_content,
    synthesize_texture,
)
from fast_style.styles import load_style_tensor, resolve_style_image

REPO = Path(__file__).resolve().parents[1]


def reconstruction_strips(
    loss_net: LossNet, photo: torch.Tensor, style: torch.Tensor, max_iter: int = 100, seed: int = 0,
    content_layers: Sequence[str] = CONTENT_RECON_LAYERS, style_layers: Sequence[str] = GATYS_STYLE_LAYERS,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Two strip images: the photo followed by its reconstructions from ``content_layers``, and the
    style image followed by textures matching Grams of ``style_layers[:1]``, ``[:2]``, ...
    Returns (content strip, texture strip, PSNR per content layer)."""
    recons, scores = [], {}
    for layer in content_layers:
        res = reconstruct_content(loss_net, photo, layer, max_iter=max_iter, seed=seed)
        recons.append(res.image)
        scores[layer] = psnr(res.image, photo.cpu())
    textures = []
    for k in range(1, len(style_layers) + 1):
        res = synthesize_texture(
            loss_net, style, style_layers[:k], tuple(photo.shape[-2:]), max_iter=max_iter, seed=seed
        )
        textures.append(res.image)
    style_small = F.interpolate(
        style.cpu(), size=photo.shape[-2:], mode="bilinear", align_corners=False, antialias=True
    )
    content_strip = image_grid([torch.cat([photo.cpu(), *recons])])
    texture_strip = image_grid([torch.cat([style_small, *textures])])
    return content_strip, texture_strip, scores


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--photo", required=True, help="the photo to reconstruct")
    p.add_argument("--style", default="starry_night", help="a named style (its shipped or cached painting)")
    p.add_argument("--style-image", default=None, help="a painting file (overrides --style's image)")
    p.add_argument("--loss-net", default="vgg19_caffe", help="vgg19_caffe | vgg16 | vgg19")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--size", type=int, default=128, help="long side of the photo and the textures (px)")
    p.add_argument("--max-iter", type=int, default=100, help="L-BFGS iterations per image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=str(REPO / "docs" / "figures"))
    args = p.parse_args()
    device = resolve_device(args.device)
    net = build_loss_net(args.loss_net, args.weights, [*CONTENT_RECON_LAYERS, *GATYS_STYLE_LAYERS]).to(device)
    photo = load_batch(args.photo, args.size).to(device)
    style = load_style_tensor(resolve_style_image(args.style, args.style_image), args.size).to(device)
    content_strip, texture_strip, scores = reconstruction_strips(net, photo, style, args.max_iter, args.seed)
    out = Path(args.out)
    print(save_image(content_strip, out / f"content_reconstruction_{args.loss_net}.png"))
    print(save_image(texture_strip, out / f"texture_synthesis_{args.style}_{args.loss_net}.png"))
    for layer, value in scores.items():
        print(f"PSNR {layer}: {value:.2f} dB")


if __name__ == "__main__":
    main()
