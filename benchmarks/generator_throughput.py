"""Training throughput (images/s) of each generator at 64 and 128 px on the current device; 256 px with bf16
when CUDA is present. Measured, not asserted.

Usage:

    python benchmarks/generator_throughput.py [--preset tiny|paper] [--sizes 64,128] [--steps 5]
        [--batch-size 16] [--device auto|cpu|cuda] [--json]

Random 5-channel data (4 MR channels + a label channel with values 0, 1, 2, 4); the label codec and the
optimiser step are included in the timing, data loading is not. The first step is a warm-up and not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace

import torch

from synthgate.generators import GeneratorKind, Preset, preset
from synthgate.generators.registry import build_trainer


def measure(kind: GeneratorKind, name: Preset, size: int, steps: int, batch: int, device: str, bf16: bool) -> dict:
    cfg = replace(preset(kind, name), batch_size=batch, bf16=bf16)
    trainer = build_trainer(cfg, (5, size, size), device)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand((batch, 5, size, size), generator=gen) * 2 - 1).to(device)
    trainer.step(x, gen, 0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        trainer.step(x, gen, i + 1)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {
        "kind": str(kind),
        "preset": str(name),
        "size": size,
        "batch": batch,
        "bf16": bf16 and device != "cpu",
        "steps": steps,
        "s_per_step": round(dt / steps, 4),
        "images_per_s": round(steps * batch / dt, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=[str(p) for p in Preset])
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = [(s, False) for s in sizes]
    if device == "cuda":
        runs.append((256, True))
    rows = []
    for kind in GeneratorKind:
        for size, bf16 in runs:
            row = measure(kind, Preset(args.preset), size, args.steps, args.batch_size, device, bf16)
            rows.append(row)
            if not args.json:
                print(
                    f"{row['kind']:10s} {row['preset']:6s} {size:4d} px  batch {row['batch']:3d}  "
                    f"bf16 {row['bf16']!s:5s}  {row['s_per_step']:.3f} s/step  {row['images_per_s']:8.1f} img/s",
                    flush=True,
                )
    info = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "results": rows,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"device: {info['device']}, torch {info['torch']}")


if __name__ == "__main__":
    main()
