"""Refinement of an alignment between grid points: a few gradient steps on the similarity transform.

The warp grid is coarse (steps of degrees and percent); a copy rotated or zoomed between two grid points would
score below its true similarity. Starting from the best grid point, the rotation, zoom and translation of each
(query, candidate) pair are optimised together by gradient ascent on their Pearson r (the ECC idea: maximise
the correlation of the aligned images), batched over the block on the torch device. The candidate (training
image) is warped onto the query; a refinement is kept only where it improves the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from synthgate.audit.features import renormalise

#: Gradient steps and their sizes per parameter: degrees, log-zoom, pixels (of the refinement's resolution).
STEPS = 12
LR = (0.8, 0.012, 0.4)
#: Images are refined at a resolution of about this side (the similarity's basin is wide and smooth there); the
#: score of the refined transform is then computed at full resolution.
REFINE_SIDE = 48


@dataclass(frozen=True)
class Refined:
    """Refined forward transforms (training -> synthetic) and their Pearson r, arrays of length n."""

    score: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray
    shift_y: np.ndarray
    shift_x: np.ndarray


def warp_candidates(cands: Any, angle_deg: Any, log_scale: Any, shift_y: Any, shift_x: Any) -> Any:
    """n x C x H x W candidate feature images moved by the forward transforms (differentiable), re-normalised."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = cands.shape
    a = torch.deg2rad(angle_deg)
    inv_s = torch.exp(-log_scale)
    co, si = torch.cos(a) * inv_s, torch.sin(a) * inv_s
    tx, ty = -2.0 * shift_x / w, -2.0 * shift_y / h
    theta = torch.stack([
        torch.stack([co, -si, co * tx - si * ty], dim=-1),
        torch.stack([si, co, si * tx + co * ty], dim=-1),
    ], dim=1)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    moved = F.grid_sample(cands, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return renormalise(moved)


def pearson_pairs(a: Any, b: Any) -> Any:
    """Channel-averaged Pearson r of matching feature images (both re-normalised): their inner product."""
    return (a * b).flatten(1).sum(dim=1)


def refine(queries: Any, cands: Any, angle_deg: np.ndarray, scale: np.ndarray, shift_y: np.ndarray,
           shift_x: np.ndarray, free: tuple[bool, bool, bool] = (True, True, True), steps: int = STEPS) -> Refined:
    """Refine the transforms of n (query, candidate) pairs of feature images from their grid starting points.

    ``free`` says which of rotation, zoom and shift may change (the transforms the audit searches); the score
    of the returned transform is summed in float64 (independent of batching) and is at least the start's.
    """
    import torch
    import torch.nn.functional as F

    dev = queries.device
    f = max(1, min(queries.shape[-2:]) // REFINE_SIDE)
    params = [torch.tensor(np.asarray(v, np.float32), device=dev).requires_grad_(True)
              for v in (angle_deg, np.log(scale), np.asarray(shift_y) / f, np.asarray(shift_x) / f)]
    lrs = (LR[0] * free[0], LR[1] * free[1], LR[2] * free[2], LR[2] * free[2])
    opt = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)])
    q = renormalise(F.avg_pool2d(queries.detach(), f)) if f > 1 else queries.detach()
    c = renormalise(F.avg_pool2d(cands.detach(), f)) if f > 1 else cands.detach()
    best = torch.full((len(q),), -torch.inf, device=dev)
    best_p = [p.detach().clone() for p in params]
    for _ in range(steps + 1 if any(free) else 1):
        opt.zero_grad()
        r = pearson_pairs(q, warp_candidates(c, *params))
        with torch.no_grad():
            better = r > best
            best = torch.where(better, r, best)
            for bp, p in zip(best_p, params, strict=True):
                bp.copy_(torch.where(better, p, bp))
        (-r.sum()).backward()
        opt.step()
    best_p[2] *= f
    best_p[3] *= f
    start = [torch.tensor(np.asarray(v, np.float32), device=dev) for v in (angle_deg, np.log(scale), shift_y,
                                                                           shift_x)]
    a = queries.detach().flatten(1).float().cpu().numpy()
    scores = []
    with torch.no_grad():
        for trial in (start, best_p):
            b = warp_candidates(cands.detach(), *trial).flatten(1).float().cpu().numpy()
            scores.append(np.einsum("ij,ij->i", a, b, dtype=np.float64))  # full resolution, summed in float64
    keep = scores[1] >= scores[0]  # the refinement never lowers the score
    ang, logs, sy, sx = (np.where(keep, p.double().cpu().numpy(), s.double().cpu().numpy())
                         for p, s in zip(best_p, start, strict=True))
    return Refined(np.maximum(scores[0], scores[1]), ang, np.exp(logs), sy + 0.0, sx + 0.0)
