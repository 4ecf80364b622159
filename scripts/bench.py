"""Benchmark: the textbook reference against fast-style's default path, in one process.

    python scripts/bench.py                      # CPU, small defaults (~2-3 min on 2 cores)
    python scripts/bench.py --device cuda --train-batches 4,8,16 --sizes 256,512,1024,2160x3840

Reference = plain implementation: fp32, eager, NCHW, the loss network run to relu4_3 separately
on the output and on the input, inference under no_grad. fast-style = PerceptualLoss (input run
only up to the content layer, style Grams precomputed) and Stylizer's inference_mode path.
Warm-up excluded, CUDA synchronised, median of repeats. Results go to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from fast_style.losses import LossConfig, PerceptualLoss, gram_matrix, tv_loss
from fast_style.models import ImageTransformNet, TransformerConfig, build_loss_net

PRESETS = {"johnson": TransformerConfig(32, 5), "small": TransformerConfig(16, 5)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_memory_mb(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB RSS (process max)"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def train_step_reference(model, loss_net, style_grams, cfg: LossConfig, opt, x) -> None:
    """The textbook step: full VGG pass on output and on input, Grams of the output."""
    y = model(x)
    fy = loss_net.extract(y, cfg.style_layers)
    with torch.no_grad():
        fx = loss_net.extract(x, cfg.style_layers)
    content = F.mse_loss(fy[cfg.content_layer], fx[cfg.content_layer])
    style = sum(F.mse_loss(gram_matrix(fy[n]), g.expand(len(x), -1, -1)) for n, g in zip(cfg.style_layers, style_grams))
    loss = cfg.content_weight * content + cfg.style_weight * style + cfg.tv_weight * tv_loss(y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def train_step_fast(model, criterion: PerceptualLoss, opt, x) -> None:
    terms = criterion(model(x), x)
    opt.zero_grad(set_to_none=True)
    terms.total.backward()
    opt.step()


def parse_size(text: str) -> tuple[int, int]:
    if "x" in text:
        h, w = text.split("x")
        return int(h), int(w)
    return int(text), int(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", choices=sorted(PRESETS), default="johnson")
    p.add_argument("--train-size", type=int, default=256)
    p.add_argument("--train-batches", default="4", help="comma-separated batch sizes")
    p.add_argument("--sizes", default="256,512,1024", help="inference sizes: N or HxW, comma-separated")
    p.add_argument("--infer-batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-train", action="store_true")
    args = p.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"# fast-style bench: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"# model={args.model} warmup={args.warmup} repeats={args.repeats} (median)\n")

    if not args.skip_train:
        cfg = LossConfig()
        loss_net = build_loss_net("vgg16", "random", cfg.layers).to(device)  # speed only: weights do not matter
        style = torch.rand(1, 3, 256, 256, device=device)
        criterion = PerceptualLoss(loss_net, style, cfg)
        print("| training | batch | reference img/s | fast-style img/s | speed-up | peak memory (fast-style) |")
        print("|---|---|---|---|---|---|")
        for batch in [int(b) for b in args.train_batches.split(",")]:
            x = torch.rand(batch, 3, args.train_size, args.train_size, device=device)
            results = {}
            for name in ("reference", "fast"):
                model = ImageTransformNet(PRESETS[args.model]).to(device)
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)
                reset_peak(device)
                if name == "reference":
                    fn = lambda: train_step_reference(model, loss_net, criterion.style_grams, cfg, opt, x)  # noqa: E731
                else:
                    fn = lambda: train_step_fast(model, criterion, opt, x)  # noqa: E731
                results[name] = batch / timed(fn, device, args.warmup, args.repeats)
            print(f"| {args.train_size} px | {batch} | {results['reference']:.2f} | {results['fast']:.2f} | "
                  f"{results['fast'] / results['reference']:.2f}x | {peak_memory_mb(device)} |")
        print()

    model = ImageTransformNet(PRESETS[args.model]).to(device).eval()
    print("| stylize | batch | reference ms/img | fast-style ms/img | speed-up | peak memory |")
    print("|---|---|---|---|---|---|")
    for text in args.sizes.split(","):
        h, w = parse_size(text)
        x = torch.rand(args.infer_batch, 3, h, w, device=device)

        def reference() -> None:
            with torch.no_grad():
                model(x)

        reset_peak(device)
        ref = timed(reference, device, args.warmup, args.repeats) / args.infer_batch
        fast = timed(lambda: model.stylize(x), device, args.warmup, args.repeats) / args.infer_batch
        print(f"| {h}x{w} | {args.infer_batch} | {ref * 1e3:.0f} | {fast * 1e3:.0f} | {ref / fast:.2f}x | "
              f"{peak_memory_mb(device)} |")


if __name__ == "__main__":
    main()
