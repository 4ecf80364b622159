"""Benchmark: the textbook reference against fast-style's default path, in one process.

    python benchmarks/bench.py                      # CPU, small defaults (~2-3 min on 2 cores)
    python benchmarks/bench.py --compile            # + torch.compile'd fast path (~1 min compile per shape on CPU)
    python benchmarks/bench.py --device cuda --train-batches 4,8,16 --sizes 256,512,1024,2160x3840
    python benchmarks/bench.py --skip-train --folder 8 --folder-size 1024   # + whole-process folder rows
    python benchmarks/bench.py --skip-train --sizes 1024 --folder 8 --first-image   # issue 25's numbers

Reference = plain implementation: fp32, eager, NCHW, nearest-upsample then 3x3 conv in the
decoder, the loss network run to relu4_3 separately on the output and on the input, inference
under no_grad. fast-style = the library's defaults: polyphase upsample-conv decoder
(fast_style.models.transformer.upsample_conv), PerceptualLoss (input run only up to the content
layer, style Grams precomputed), inference_mode; with --compile also torch.compile (compile time
printed separately, never inside the timings); on the CPU also the onnxruntime backend (Stylizer's
default there: the cached export of fast_style.onnx_backend, export time printed separately) and
its opt-in ``precision=int8`` graph.
Warm-up excluded, CUDA synchronised, median of repeats, reference and fast path interleaved so
that load on the machine hits both alike. ``--folder N``: whole processes on a folder of N
random photos, ``benchmarks/plain_stylize.py`` (plain fp32 eager loop) against ``scripts/stylize.py``
with its defaults and with ``precision=int8``, warm ONNX cache, and a cold-cache row (the export
included; the machine profile of fast_style.machine copied in, so it is the export's cost alone).
``--first-image``: wall time of ``scripts/stylize.py ckpt=starry_night input=<sample chelsea.jpg>``
with an empty FAST_STYLE_CACHE (a new user's first command: no profile, no export) and warm.
The header names the CPU (lscpu model and flags) and the load (``uptime``).
Results go to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fast_style.losses import LossConfig, PerceptualLoss, gram_matrix, tv_loss
from fast_style.models import ImageTransformNet, TransformerConfig, build_loss_net
from fast_style.models.transformer import UpsampleConvNormReLU

PRESETS = {"johnson": TransformerConfig(32, 5), "small": TransformerConfig(16, 5)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of every thread of this process)


def timed(fns: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function; calls are interleaved (a, b, a, b, ...) so a
    burst of load on a shared machine does not favour whichever ran second."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = CLOCK()
            fn()
            sync(device)
            times[name].append(CLOCK() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def textbook(model: ImageTransformNet) -> ImageTransformNet:
    """Switch the decoder to upsample-then-conv: the reference computation (same parameters)."""
    for m in model.modules():
        if isinstance(m, UpsampleConvNormReLU):
            m.fast_upsample = False
    return model


def compile_timed(fn: Callable[[], None], device: torch.device) -> float:
    """Seconds for the first call of a torch.compile'd function (the cold compile)."""
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


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


def train_step_fast(loss_fn: Callable[[torch.Tensor], torch.Tensor], opt, x) -> None:
    loss = loss_fn(x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
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
    p.add_argument("--compile", action="store_true", help="also time the torch.compile'd fast path")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime columns (CPU only anyway)")
    p.add_argument("--no-int8", action="store_true",
                   help="skip the int8 column (at 4K three engines' buffers need over 24 GB)")
    p.add_argument("--folder", type=int, default=0, help="whole-process rows on a folder of this many photos")
    p.add_argument("--folder-size", type=int, default=1024)
    p.add_argument("--skip-stylize", action="store_true")
    p.add_argument("--first-image", action="store_true",
                   help="cold (empty cache) and warm wall time of the real command on one sample photo")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: CPU seconds (all threads; children for --folder) instead of wall time, for a "
                        "machine where other jobs take the cores (equal to wall x threads on an idle one)")
    args = p.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"# fast-style bench: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"# cpu: {machine_line()}")
    print(f"# load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"# model={args.model} warmup={args.warmup} repeats={args.repeats} (median, interleaved), "
          f"clock={args.clock}\n")
    if args.first_image:
        bench_first_image(args)
    variants = ["reference", "fast"] + (["compiled"] if args.compile else [])

    if not args.skip_train:
        cfg = LossConfig().for_loss_net("vgg16")
        loss_net = build_loss_net("vgg16", "random", cfg.layers).to(device)  # speed only: weights do not matter
        style = torch.rand(1, 3, 256, 256, device=device)
        criterion = PerceptualLoss(loss_net, style, cfg, reference=torch.rand(2, 3, 64, 64, device=device))
        print("| training | batch | reference img/s | fast-style img/s | speed-up |"
              + (" compiled img/s | speed-up | compile s |" if args.compile else "") + " peak memory |")
        print("|---|---|---|---|---|" + ("---|---|---|" if args.compile else "") + "---|")
        for batch in [int(b) for b in args.train_batches.split(",")]:
            x = torch.rand(batch, 3, args.train_size, args.train_size, device=device)
            steps: dict[str, Callable[[], None]] = {}
            for name in variants:
                model = ImageTransformNet(PRESETS[args.model]).to(device)
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)
                if name == "reference":
                    textbook(model)
                    steps[name] = lambda m=model, o=opt: train_step_reference(  # noqa: E731
                        m, loss_net, criterion.style_grams, cfg, o, x
                    )
                else:
                    loss_fn = lambda x, m=model: criterion(m(x), x).total  # noqa: E731
                    if name == "compiled":
                        loss_fn = torch.compile(loss_fn)
                    steps[name] = lambda f=loss_fn, o=opt: train_step_fast(f, o, x)  # noqa: E731
            compile_s = compile_timed(steps["compiled"], device) if args.compile else 0.0
            reset_peak(device)
            secs = timed(steps, device, args.warmup, args.repeats)
            ips = {name: batch / t for name, t in secs.items()}
            row = f"| {args.train_size} px | {batch} | {ips['reference']:.2f} | {ips['fast']:.2f} | " \
                  f"{ips['fast'] / ips['reference']:.2f}x |"
            if args.compile:
                row += f" {ips['compiled']:.2f} | {ips['compiled'] / ips['reference']:.2f}x | {compile_s:.0f} |"
            print(row + f" {peak_memory_mb(device)} |", flush=True)
        print()

    if not args.skip_stylize:
        bench_stylize(args, device)
    if args.folder:
        bench_folder(args)


def bench_stylize(args: argparse.Namespace, device: torch.device) -> None:
    """Per-image stylization table: reference, fast-style eager, [compiled], [onnxruntime fp32 and int8],
    [torch bf16 where the CPU has bf16 units]: backend=auto runs whichever of onnxruntime fp32, bf16
    and eager the machine profile measured fastest (fast_style.machine)."""
    fast_model = ImageTransformNet(PRESETS[args.model]).to(device).eval()
    ref_model = textbook(ImageTransformNet(PRESETS[args.model]).to(device).eval())
    ref_model.load_state_dict(fast_model.state_dict())
    # inference_mode tensors cannot pass through torch.compile's graph capture: no_grad there
    compiled_net = torch.compile(fast_model, dynamic=False) if args.compile else None  # one graph per size
    onnx_net = int8_net = None
    if device.type == "cpu" and not args.no_onnx:
        from fast_style.onnx_backend import OnnxNet

        with tempfile.TemporaryDirectory() as cache:  # a fresh cache: the export is timed every run
            t = time.perf_counter()
            onnx_net = OnnxNet(fast_model, Path(cache))
            print(f"# onnxruntime: export + session {time.perf_counter() - t:.1f} s (once per checkpoint, cached)")
            if not args.no_int8:
                t = time.perf_counter()
                int8_net = OnnxNet(fast_model, Path(cache), precision="int8")
                print(f"# onnxruntime int8 (precision=int8): export + calibration + session "
                      f"{time.perf_counter() - t:.1f} s (once per checkpoint, cached)")
            print()

    bf16_net = None
    if device.type == "cpu":
        from fast_style.backends import Bf16Net
        from fast_style.machine import has_bf16_units

        bf16_net = Bf16Net(fast_model) if has_bf16_units() else None  # what backend=auto may pick here

    def compiled(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return compiled_net(x).clamp_(0.0, 1.0)

    print("| stylize | batch | reference ms/img | torch eager ms/img | speed-up |"
          + (" compiled ms/img | speed-up | compile s |" if args.compile else "")
          + (" onnxruntime ms/img | speed-up |" if onnx_net else "")
          + (" int8 ms/img | speed-up |" if int8_net else "")
          + (" torch bf16 ms/img | speed-up |" if bf16_net else "") + " peak memory |")
    compiled_cols = "---|---|---|" if args.compile else ""
    onnx_cols = ("---|---|" if onnx_net else "") + ("---|---|" if int8_net else "") + ("---|---|" if bf16_net else "")
    print("|---|---|---|---|---|" + compiled_cols + onnx_cols + "---|")
    for text in args.sizes.split(","):
        h, w = parse_size(text)
        x = torch.rand(args.infer_batch, 3, h, w, device=device)

        def reference() -> None:
            with torch.no_grad():
                ref_model(x)

        fns: dict[str, Callable[[], None]] = {"reference": reference, "fast": lambda: fast_model.stylize(x)}
        if args.compile:
            fns["compiled"] = lambda: compiled(x)
        if onnx_net:
            fns["onnxruntime"] = lambda: onnx_net(x)
        if int8_net:
            fns["int8"] = lambda: int8_net(x)
        if bf16_net:
            fns["bf16"] = lambda: bf16_net(x)
        compile_s = compile_timed(fns["compiled"], device) if args.compile else 0.0
        reset_peak(device)
        ms = {name: t * 1e3 / args.infer_batch for name, t in timed(fns, device, args.warmup, args.repeats).items()}
        row = f"| {h}x{w} | {args.infer_batch} | {ms['reference']:.0f} | {ms['fast']:.0f} | " \
              f"{ms['reference'] / ms['fast']:.2f}x |"
        if args.compile:
            row += f" {ms['compiled']:.0f} | {ms['reference'] / ms['compiled']:.2f}x | {compile_s:.0f} |"
        if onnx_net:
            row += f" {ms['onnxruntime']:.0f} | {ms['reference'] / ms['onnxruntime']:.2f}x |"
        if int8_net:
            row += f" {ms['int8']:.0f} | {ms['reference'] / ms['int8']:.2f}x |"
        if bf16_net:
            row += f" {ms['bf16']:.0f} | {ms['reference'] / ms['bf16']:.2f}x |"
        print(row + f" {peak_memory_mb(device)} |", flush=True)


def machine_line() -> str:
    """lscpu's model name and flags (what docs/PERFORMANCE.md records beside each figure)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}).stdout
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}; flags: {fields.get('Flags', '?').strip()}"


def bench_first_image(args: argparse.Namespace) -> None:
    """The real command on one sample photo: empty cache (median of ``--repeats`` fresh caches), then warm."""
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photo = repo / "fast_style/sample/photos/chelsea.jpg"

        def run(cache: Path) -> float:
            env = {k: v for k, v in os.environ.items() if k != "FAST_STYLE_ONNX_CACHE"}
            env.update(PYTHONPATH=str(repo), FAST_STYLE_CACHE=str(cache))
            cmd = [sys.executable, str(repo / "scripts/stylize.py"), "ckpt=starry_night", f"input={photo}",
                   f"output={root / 'out.png'}"]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.perf_counter() - t

        cold = [run(root / f"cold{i}") for i in range(args.repeats)]
        run(root / "warm")
        warm = [run(root / "warm") for _ in range(args.repeats)]
    print(f"| first image, `scripts/stylize.py ckpt=starry_night input=chelsea.jpg` (451x300) | wall s "
          f"(median of {args.repeats}) |\n|---|---|\n| empty cache (a new user's first command) | "
          f"{statistics.median(cold):.2f} |\n| warm cache | {statistics.median(warm):.2f} |\n", flush=True)


def bench_folder(args: argparse.Namespace) -> None:
    """Whole processes on one folder (median of ``--repeats``, interleaved): the plain script
    against ``scripts/stylize.py`` with its defaults (warm ONNX cache), then a cold-cache row."""
    from fast_style.checkpoint import save_checkpoint

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        model = ImageTransformNet(PRESETS[args.model])
        ckpt = save_checkpoint({"model_config": model.config.to_dict(), "model": model.state_dict(), "style": "s"},
                               root / "bench.pt")
        photos = root / "photos"
        photos.mkdir()
        rng = np.random.default_rng(0)
        from PIL import Image

        for i in range(args.folder):  # smooth gradients + noise: PNG sizes like photos, not like noise
            n = args.folder_size
            yy, xx = np.mgrid[0:n, 0:n]
            base = np.stack([xx / n, yy / n, (xx + yy) / (2 * n)], -1) * 200 + rng.normal(0, 12, (n, n, 3))
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(photos / f"p{i}.png")
        env = {**os.environ, "PYTHONPATH": str(repo), "FAST_STYLE_ONNX_CACHE": str(root / "onnx")}
        commands = {
            "plain script": [
                sys.executable, str(repo / "benchmarks/plain_stylize.py"), str(ckpt), str(photos), str(root / "o1")
            ],
            "stylize.py (defaults)": [sys.executable, str(repo / "scripts/stylize.py"), f"ckpt={ckpt}",
                                      f"input={photos}", f"output={root / 'o2'}"],
            "stylize.py precision=int8": [sys.executable, str(repo / "scripts/stylize.py"), f"ckpt={ckpt}",
                                          f"input={photos}", f"output={root / 'o3'}", "precision=int8"],
        }

        def run(cmd: list[str], extra: dict[str, str] | None = None) -> float:
            t, c = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(cmd, check=True, env={**env, **(extra or {})}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            if args.clock == "cpu":
                u = resource.getrusage(resource.RUSAGE_CHILDREN)
                return (u.ru_utime - c.ru_utime) + (u.ru_stime - c.ru_stime)
            return time.perf_counter() - t

        run(commands["stylize.py (defaults)"])  # fill the cache (the cold row below uses its own)
        run(commands["stylize.py precision=int8"])
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                times[name].append(run(cmd))
        cold = []
        for i in range(max(1, args.repeats // 3)):  # the machine stays measured: the export's cost alone
            (root / f"cold{i}").mkdir()
            for profile in (root / "onnx").glob("machine-*.json"):
                shutil.copy(profile, root / f"cold{i}" / profile.name)
            cold.append(run(commands["stylize.py (defaults)"], {"FAST_STYLE_ONNX_CACHE": str(root / f"cold{i}")}))
        base = statistics.median(times["plain script"])
        print(f"\n| whole process, {args.folder} images {args.folder_size}x{args.folder_size} | {args.clock} s "
              f"(median of {args.repeats}) | speed-up |\n|---|---|---|")
        for name, ts in times.items():
            print(f"| {name} | {statistics.median(ts):.1f} | {base / statistics.median(ts):.2f}x |")
        print(f"| stylize.py, cold ONNX cache (exports first) | {statistics.median(cold):.1f} | "
              f"{base / statistics.median(cold):.2f}x |", flush=True)


if __name__ == "__main__":
    main()
