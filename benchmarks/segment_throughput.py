"""Training throughput of the utility audit's networks, in training slices per second (measured, not asserted).

    python benchmarks/segment_throughput.py [--size 64] [--channels 4] [--batch 8] [--steps 10] [--threads 0]
        [--device cpu] [--nets unet,swinunetr] [--no-augment]

For each network (at the ``quick`` preset's width and the ``study`` preset's width) it times ``--steps``
optimisation steps (forward, Dice + BCE loss, backward, AdamW; with the MONAI augmentations unless
``--no-augment``) on random images after two warm-up steps, and the augmentation alone. ``--threads 0`` keeps
torch's default thread count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def time_steps(net: str, width: int, args: argparse.Namespace) -> float:
    import torch
    from monai.losses import DiceLoss

    from synthgate.segment.models import build_model
    from synthgate.segment.train import make_augment

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.channels, args.size, args.size), dtype=np.float32)
    y = (rng.random((args.batch, 3, args.size, args.size)) < 0.05).astype(np.float32)
    model = build_model(net, args.channels, 3, width).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dice, bce = DiceLoss(sigmoid=True, batch=True), torch.nn.BCEWithLogitsLoss()
    augment = None if args.no_augment else make_augment(0, args.size)

    def step() -> None:
        xb, yb = torch.from_numpy(x).to(args.device), torch.from_numpy(y).to(args.device)
        if augment is not None:
            xb, yb = augment(xb, yb)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device.startswith("cuda")):
            out = model(xb)
        out = out.float()
        loss = dice(out, yb) + bce(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return args.steps * args.batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=4, help="image channels (label excluded)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nets", default="unet,swinunetr")
    ap.add_argument("--no-augment", action="store_true")
    args = ap.parse_args()
    import torch

    from synthgate.segment.train import make_augment
    from synthgate.segment.utility import UtilityConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"{args.size}x{args.size}, {args.channels} channels, batch {args.batch}, {args.steps} steps, "
        f"device {args.device}, torch threads {torch.get_num_threads()}, augment {not args.no_augment}"
    )
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.channels, args.size, args.size), dtype=np.float32)
    y = (rng.random((args.batch, 3, args.size, args.size)) < 0.05).astype(np.float32)
    aug = make_augment(0, args.size)
    xt, yt = torch.from_numpy(x).to(args.device), torch.from_numpy(y).to(args.device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        aug(xt, yt)
    print(f"augmentation alone: {args.steps * args.batch / (time.perf_counter() - t0):.0f} slices/s")
    for net in args.nets.split(","):
        for preset in ("quick", "study"):
            width = UtilityConfig.preset(preset, net).train.width
            rate = time_steps(net, width, args)
            print(f"{net:10s} width {width:3d} ({preset} preset): {rate:8.1f} training slices/s")


if __name__ == "__main__":
    main()
