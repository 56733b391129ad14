"""Training throughput of each generator: images/s, FLOPs per step and MFU (measured, not asserted).

Usage:

    python benchmarks/generator_throughput.py [--preset tiny|memorize|paper] [--kinds diffusion,stylegan2]
        [--sizes 64,128] [--steps 5] [--batch-size 16] [--device auto|cpu|cuda] [--bf16-256]
        [--peak TFLOPS] [--threads 0] [--json]

Random 5-channel data (4 MR channels + a label channel) already on the device; the optimiser step, the EMA
update and the generator's own augmentation are included in the timing, data loading is not. The first step is
a warm-up and not timed; one more step runs under torch's FLOP counter (:func:`synthgate.flops.count_flops`;
matrix products, convolutions and attention, forward and backward). StyleGAN2's figure averages a step with
its lazy R1 penalty and the steps without it over the R1 interval. MFU is the achieved FLOP/s over the
device's dense bf16 peak (:data:`synthgate.flops.BF16_PEAK_FLOPS`, or ``--peak`` in TFLOP/s); unknown devices
(the CPU) report no MFU unless ``--peak`` is given. On CUDA 256 px with bf16 is added unless ``--sizes`` is
given. ``--json`` prints one object whose results carry ``tflops_per_step``, ``tflops_per_s`` and ``mfu``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace

import torch

from synthgate.flops import count_flops, mfu, peak_flops
from synthgate.generators import GeneratorKind, Preset, preset
from synthgate.generators.config import StyleGAN2Config
from synthgate.generators.registry import build_trainer


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(
    kind: GeneratorKind, name: Preset, size: int, args: argparse.Namespace, bf16: bool, peak: float | None
) -> dict:
    cfg = replace(preset(kind, name), batch_size=args.batch_size, bf16=bf16)
    trainer = build_trainer(cfg, (5, size, size), args.device)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand((args.batch_size, 5, size, size), generator=gen) * 2 - 1).to(args.device)
    trainer.step(x, gen, 1)  # warm-up (a step without R1)
    _sync(args.device)
    t0 = time.perf_counter()
    for i in range(args.steps):
        trainer.step(x, gen, i + 1)
    _sync(args.device)
    dt = (time.perf_counter() - t0) / args.steps
    flops = float(count_flops(lambda: trainer.step(x, gen, 1)))
    if isinstance(cfg.model, StyleGAN2Config) and cfg.model.r1_gamma > 0:
        every = cfg.model.r1_every
        flops = (count_flops(lambda: trainer.step(x, gen, 0)) + (every - 1) * flops) / every
    util = mfu(flops, dt, peak)
    return {
        "kind": str(kind),
        "preset": str(name),
        "size": size,
        "batch": args.batch_size,
        "bf16": bf16 and args.device != "cpu",
        "steps": args.steps,
        "s_per_step": round(dt, 4),
        "images_per_s": round(args.batch_size / dt, 2),
        "tflops_per_step": round(flops / 1e12, 5),
        "tflops_per_s": round(flops / dt / 1e12, 4),
        "mfu": None if util is None else round(util, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=[str(p) for p in Preset])
    ap.add_argument("--kinds", default=",".join(GeneratorKind))
    ap.add_argument("--sizes", default=None, help="image sides (default 64,128; plus 256 with bf16 on CUDA)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--peak", type=float, default=None, help="device peak in TFLOP/s (default: from the table)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    cuda = args.device == "cuda"
    runs = [(int(s), cuda) for s in (args.sizes or "64,128").split(",")]
    if cuda and args.sizes is None:
        runs = [(s, False) for s, _ in runs] + [(256, True)]
    name = torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)"
    peak = args.peak * 1e12 if args.peak else (peak_flops(name) if cuda else None)
    load = os.getloadavg()
    rows = []
    for kind in (GeneratorKind(k) for k in args.kinds.split(",")):
        for size, bf16 in runs:
            row = measure(kind, Preset(args.preset), size, args, bf16, peak)
            rows.append(row)
            if not args.json:
                util = "n/a" if row["mfu"] is None else f"{row['mfu']:.1%}"
                print(
                    f"{row['kind']:10s} {row['preset']:6s} {size:4d} px  batch {row['batch']:3d}  "
                    f"bf16 {row['bf16']!s:5s}  {row['s_per_step']:.3f} s/step  {row['images_per_s']:8.1f} img/s  "
                    f"{row['tflops_per_step']:.4f} TFLOP/step  {row['tflops_per_s']:.3f} TFLOP/s  MFU {util}",
                    flush=True,
                )
    info = {
        "device": name,
        "peak_tflops": None if peak is None else peak / 1e12,
        "load_average_before": [round(v, 2) for v in load],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "results": rows,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(
            f"device: {info['device']}, peak {info['peak_tflops']} TFLOP/s, torch {info['torch']}, "
            f"load average before {info['load_average_before']} after {info['load_average_after']}"
        )


if __name__ == "__main__":
    main()
