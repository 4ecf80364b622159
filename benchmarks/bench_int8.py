"""Is int8 ONNX Runtime worth a ``precision=int8`` option on this CPU (issue 15), and does torch bf16
keep the quality bar that lets ``backend=auto`` pick it (fast_style.machine.BF16_QUALITY)?

    python benchmarks/bench_int8.py --ckpt starry_night --size 1024 --photos ../shared/data/photos_val
    python benchmarks/bench_int8.py --ckpt the_scream --skip-int8 --n 8     # bf16 against fp32 only

Exports the checkpoint as the onnxruntime backend does (fast_style.onnx_backend.export_fp32, clamped),
then quantises it three ways: the library's ``precision=int8`` (static QDQ of the convolutions,
activation ranges calibrated on the embedded sample photos), static QDQ of every op, and dynamic
(weights int8, activations quantised per call); where the CPU has bf16 units, also
:class:`fast_style.backends.Bf16Net`. Prints, per variant: median seconds for one ``--size`` square image
(same session options as the backend, warm-up excluded), the speed-up over fp32, PSNR of the
output against fp32 on ``--n`` held-out photos, and the change of the independent style score
(fast_style.measure, vgg19_caffe). It is how the option's form was chosen; results in
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from fast_style.backends import Bf16Net
from fast_style.checkpoint import load_checkpoint, model_from_checkpoint
from fast_style.data import list_images
from fast_style.images import load_image, resize_long_side, to_tensor
from fast_style.machine import has_bf16_units
from fast_style.measure import MEASURE_SIZE, StyleScorer, psnr
from fast_style.onnx_backend import calibration_batches, export_fp32, quantize_int8, session_options
from fast_style.styles import load_style_tensor, stored_style_image


def session(path: Path):  # noqa: ANN201 - onnxruntime is imported lazily
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


def run(sess, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    name = sess.get_inputs()[0].name
    return torch.from_numpy(sess.run(None, {name: x.contiguous().numpy()})[0])


def timed(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int) -> float:
    net(x)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def quantise(fp32: Path, out_dir: Path) -> dict[str, Path]:
    """The library's ``precision=int8`` graph (fast_style.onnx_backend.quantize_int8: static QDQ,
    convolutions only, calibrated on the embedded sample photos) and the two variants it was
    chosen over: static QDQ of every op, and dynamic quantisation."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    library = out_dir / "library.onnx"
    library.write_bytes(quantize_int8(fp32.read_bytes()))
    pre = out_dir / "pre.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    dynamic = out_dir / "dynamic.onnx"
    quantize_dynamic(str(pre), str(dynamic), weight_type=QuantType.QInt8)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration_batches(1))

        def get_next(self):  # noqa: ANN202
            return next(self.items, None)

    every_op = out_dir / "every_op.onnx"
    quantize_static(str(pre), str(every_op), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    return {"int8 static, convs only (precision=int8)": library, "int8 static, every op": every_op,
            "int8 dynamic": dynamic}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default="starry_night", help="checkpoint path or shipped name")
    p.add_argument("--photos", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/photos_val"))
    p.add_argument("--size", type=int, default=1024, help="side of the timed square image")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=4, help="held-out photos for PSNR and style score")
    p.add_argument("--skip-int8", action="store_true", help="fp32 and bf16 only (no quantisation)")
    args = p.parse_args()

    state = load_checkpoint(args.ckpt)
    model = model_from_checkpoint(state).eval()
    paths = sorted(list_images(Path(args.photos)))
    photos = [to_tensor(resize_long_side(load_image(q), MEASURE_SIZE)).unsqueeze(0) for q in paths[:args.n]]
    scorer = StyleScorer(load_style_tensor(stored_style_image(state["config"]["style"]), MEASURE_SIZE))
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))

    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        fp32 = Path(tmp) / "fp32.onnx"
        fp32.write_bytes(export_fp32(model))
        base = partial(run, session(fp32))
        nets: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"fp32": base}
        if not args.skip_int8:
            nets.update({label: partial(run, session(path)) for label, path in quantise(fp32, Path(tmp)).items()})
        if has_bf16_units():
            nets["torch bf16 (Bf16Net)"] = Bf16Net(model)
        base_out = [base(ph) for ph in photos]
        base_score = scorer.score_many(base_out, photos)
        base_s = timed(base, x, args.repeats)
        print(f"{args.ckpt}: {args.size}x{args.size}, {torch.get_num_threads()} threads, "
              f"PSNR/style score on {len(photos)} photos at {MEASURE_SIZE} px")
        print("| variant | seconds | speed-up | PSNR vs fp32 (dB) | style score | content change |")
        print("|---|---|---|---|---|---|")
        for label, net in nets.items():
            secs = base_s if label == "fp32" else timed(net, x, args.repeats)
            outs = base_out if label == "fp32" else [net(ph) for ph in photos]
            score = scorer.score_many(outs, photos)
            quality = float(np.mean([psnr(o, b) for o, b in zip(outs, base_out)])) if label != "fp32" else float("inf")
            print(f"| {label} | {secs:.3f} | {base_s / secs:.2f}x | {quality:.1f} | {score.style:.3f} "
                  f"(fp32 {base_score.style:.3f}) | {score.content:.3f} |")


if __name__ == "__main__":
    main()
