"""Candidates for the alignment: training images a moved copy may come from, which pixel search can miss.

A shifted copy has a low pixel correlation with its source, so the exact pixel top-k may not contain it. The
**shift-invariant descriptor** (square root of the low-frequency Fourier magnitude of each centred channel,
downsampled) does not change with a translation; the descriptor of each query, of its rotated views (the
descriptor is not rotation invariant) and of its mirror, searched against the training descriptors, proposes
``k`` more candidates per query. This is a proposal, not a score: every candidate is scored by the alignment.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DESCRIPTOR_SIZE = 32  # feature images are area-downsampled to at most this side before the Fourier transform
DESCRIPTOR_FREQ = 6  # keep frequencies |u|, |v| <= this


def descriptor_images(x: Any) -> Any:
    """Feature images (torch, ... x H x W) area-downsampled to the descriptor's side (no copy when small).

    Adaptive pooling bins are mirror-symmetric, so the descriptor images of a mirrored image are the mirrored
    descriptor images: the audit pools once and mirrors the small images.
    """
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if max(h, w) <= DESCRIPTOR_SIZE:
        return x
    lead = x.shape[:-2]
    pooled = F.adaptive_avg_pool2d(x.reshape(-1, 1, h, w), (min(h, DESCRIPTOR_SIZE), min(w, DESCRIPTOR_SIZE)))
    return pooled.reshape(*lead, *pooled.shape[-2:])


def descriptors(vectors: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Shift-invariant descriptors (n x D float32, centred, unit norm) of feature vectors (n x C*H*W), or of
    images already passed through :func:`descriptor_images`."""
    import torch

    x = vectors if isinstance(vectors, torch.Tensor) else torch.from_numpy(np.asarray(vectors, np.float32))
    x = descriptor_images(x.float().reshape(-1, *shape))
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    x = x / x.flatten(2).norm(dim=2).clamp_min(1e-12)[..., None, None]
    mag = torch.fft.rfft2(x).abs()
    m = min(DESCRIPTOR_FREQ, mag.shape[-2] // 2, mag.shape[-1] - 1)
    rows = list(range(0, m + 1)) + list(range(mag.shape[-2] - m, mag.shape[-2]))
    d = mag[..., rows, : m + 1].flatten(1).sqrt().double()
    d = d - d.mean(dim=1, keepdim=True)
    d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return d.float().cpu().numpy()


def descriptor_candidates(
    view_descriptors: np.ndarray,
    db_descriptors: np.ndarray,
    db_valid: np.ndarray,
    k: int,
    per_image: int,
    n_views: int,
    mirrored: bool,
    db_groups: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """n x k index entries nearest to each query by descriptor, over its views (best view per entry first).

    Args:
        view_descriptors: (n * n_views * (2 if mirrored else 1)) x D descriptors, ordered query, then mirror
            (plain, mirrored), then view.
        db_descriptors: N x D training descriptors; ``db_valid`` masks zero-variance images.
        k: entries kept per query.
        per_image: index entries per training image (2 with mirrors: entry ``2 j + 1`` is image ``j`` mirrored).
        n_views: rotated views per query (identity first).
        mirrored: whether the descriptors include the mirrored query.
        db_groups, query_groups: a query never gets a training image of its own group.
        device: torch device of the product.

    Returns:
        n x k int64 entries, -1 where fewer exist.
    """
    import torch

    m = 2 if mirrored else 1
    n = len(view_descriptors) // (m * n_views)
    kk = min(k, len(db_descriptors))
    out = np.full((n, k), -1, dtype=np.int64)
    if n == 0 or kk == 0:
        return out
    q = torch.from_numpy(view_descriptors).to(device)
    db = torch.from_numpy(db_descriptors).to(device)
    s = q @ db.T  # (n m v) x N
    bad = torch.from_numpy(~db_valid)[None, :].to(device)
    if query_groups is not None and db_groups is not None:
        qg = torch.from_numpy(np.repeat(query_groups, m * n_views))[:, None].to(device)
        bad = bad | (qg == torch.from_numpy(db_groups)[None, :].to(device))
    s = s.masked_fill(bad, -torch.inf)
    top = torch.topk(s, kk, dim=1)
    rows = top.indices.reshape(n, m, n_views * kk).cpu().numpy().astype(np.int64)
    flip = np.broadcast_to(np.arange(m)[None, :, None], rows.shape)
    entries = (rows * per_image + (flip if per_image == 2 else 0)).reshape(n, -1)
    vals = top.values.reshape(n, -1).cpu().numpy()
    for i in range(n):
        order = np.argsort(-vals[i], kind="stable")
        uniq = list(dict.fromkeys(int(e) for e, v in zip(entries[i, order], vals[i, order], strict=True)
                                  if np.isfinite(v)))[:k]
        out[i, : len(uniq)] = uniq
    return out
