"""Training throughput of the utility audit's networks, and augmentation's share of a step (measured, not asserted).

    python benchmarks/segment_throughput.py [--size 64] [--channels 4] [--batch 8] [--steps 10] [--threads 0]
        [--device cpu] [--nets unet,swinunetr] [--presets quick,study] [--json]

For each network (at the ``quick`` preset's width and the ``study`` preset's width) it times ``--steps``
optimisation steps (forward, Dice + BCE loss, backward, AdamW) on random images after two warm-up steps, once
without and once with the trainer's batched augmentation (:class:`synthgate.segment.augment.BatchAugment`), and
the augmentation alone. It prints the augmentation's time as a share of an augmented step. ``--threads 0`` keeps
torch's default thread count.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np


def timed(fn: Callable[[], None], steps: int, device: str) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls after two warm-up calls."""
    import torch

    for _ in range(2):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def measure(net: str, width: int, args: argparse.Namespace) -> dict[str, float]:
    import torch
    from monai.losses import DiceLoss

    from synthgate.segment.augment import AugmentSpec, BatchAugment
    from synthgate.segment.models import build_model

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((args.batch, args.channels, args.size, args.size), dtype=np.float32))
    y = torch.from_numpy((rng.random((args.batch, 3, args.size, args.size)) < 0.05).astype(np.float32))
    x, y = x.to(args.device), y.to(args.device)
    model = build_model(net, args.channels, 3, width).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dice, bce = DiceLoss(sigmoid=True, batch=True), torch.nn.BCEWithLogitsLoss()
    augment = BatchAugment(AugmentSpec(), 0)

    def step(aug: bool) -> None:
        xb, yb = augment(x, y) if aug else (x, y)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device.startswith("cuda")):
            out = model(xb)
        out = out.float()
        loss = dice(out, yb) + bce(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    plain = timed(lambda: step(False), args.steps, args.device)
    with_aug = timed(lambda: step(True), args.steps, args.device)
    aug_alone = timed(lambda: augment(x, y) and None, args.steps, args.device)
    return {
        "slices_per_s_without_augmentation": args.batch / plain,
        "slices_per_s_with_augmentation": args.batch / with_aug,
        "augmentation_slices_per_s": args.batch / aug_alone,
        "augmentation_share_of_step": aug_alone / with_aug,
        "throughput_ratio": plain / with_aug,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=4, help="image channels (label excluded)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nets", default="unet,swinunetr")
    ap.add_argument("--presets", default="quick,study")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    import torch

    from synthgate.segment.utility import UtilityConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    setting = (
        f"{args.size}x{args.size}, {args.channels} channels, batch {args.batch}, {args.steps} steps, "
        f"device {args.device}, torch threads {torch.get_num_threads()}"
    )
    rows = []
    if not args.json:
        print(setting)
    for net in args.nets.split(","):
        for preset in args.presets.split(","):
            width = UtilityConfig.preset(preset, net).train.width
            r = {"net": net, "preset": preset, "width": width, **measure(net, width, args)}
            rows.append(r)
            if not args.json:
                print(
                    f"{net:10s} width {width:3d} ({preset:5s}): {r['slices_per_s_without_augmentation']:8.1f} "
                    f"slices/s without augmentation, {r['slices_per_s_with_augmentation']:8.1f} with "
                    f"({r['throughput_ratio']:.0%}); augmentation alone {r['augmentation_slices_per_s']:7.0f} "
                    f"slices/s = {r['augmentation_share_of_step']:.1%} of an augmented step"
                )
    if args.json:
        print(json.dumps({"setting": setting, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
