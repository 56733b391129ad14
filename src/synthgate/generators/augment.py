"""Augmentation for GAN training: mirror flips of real images and DiffAugment (Zhao et al. 2020).

DiffAugment applies the same kind of differentiable transform to real and fake images before the
discriminator, so a GAN trains on few images without leaking the augmentation into its output. Random draws
come from ``gen``, a ``torch.Generator`` on the images' device (the trainers seed one per step), and every
transform is one batched operation: no per-sample Python loop, nothing read back to the host. Padding uses -1,
the background value in the generator's range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mirror(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flip each image left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=gen, device=gen.device) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)


def translate(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its side in x and y, padding with -1 (one gather per batch)."""
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n,), generator=gen, device=gen.device).to(x.device)
    dx = torch.randint(-sw, sw + 1, (n,), generator=gen, device=gen.device).to(x.device)
    padded = F.pad(x, (sw, sw, sh, sh), value=-1.0)
    rows = (sh - dy).view(n, 1, 1, 1) + torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = (sw - dx).view(n, 1, 1, 1) + torch.arange(w, device=x.device).view(1, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chan, rows, cols]


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Set a random square of ``ratio`` of the side to -1 in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n,), generator=gen, device=gen.device).to(x.device).view(n, 1, 1)
    cx = torch.randint(0, w + (1 - cw % 2), (n,), generator=gen, device=gen.device).to(x.device).view(n, 1, 1)
    y0, x0 = cy - ch // 2, cx - cw // 2
    yy = torch.arange(h, device=x.device).view(1, h, 1)
    xx = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (yy >= y0) & (yy < y0 + ch) & (xx >= x0) & (xx < x0 + cw)
    return x.masked_fill(inside.unsqueeze(1), -1.0)


def diffaugment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Translation then cutout."""
    return cutout(translate(x, gen), gen)
