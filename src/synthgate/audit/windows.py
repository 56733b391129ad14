"""Partial-copy candidates: the training images whose half-size windows best match a query's, over the whole set.

The partial score (:mod:`synthgate.audit.scores`) catches a copied half slice or a pasted tumour region, but only
for the pairs it is given, and the whole-image pixel search does not propose the source of a partial copy: its
whole-image r is set by the other, foreign part of the slice and by anatomy (0.95 for any slice at the same level),
so the source is rarely among a query's first whole-image candidates.

The **window descriptors** search every training image for the best window instead. Each feature image is
area-downsampled to :data:`~synthgate.audit.candidates.DESCRIPTOR_SIZE` (the pooled images of the shift descriptor),
reduced to its high-pass residual (the structure, not the outline), and cut into a 3 x 3 grid of half-size
windows at a quarter-side stride (:func:`proposal_grid`). Each window is centred and scaled to unit norm per
channel (divided by sqrt C), so that the product of two windows is their channel-mean Pearson r; a window with
too little brain is zero and never wins. Each window position proposes the training entry (its mirror too:
entry ``2 j + 1``) whose window there best matches the query's; the :data:`WINDOW_CANDIDATES` best distinct
proposals become pairs of the partial and structure scores, which decide. This search only proposes, so it runs
in bfloat16 where the CPU or GPU multiplies it fast.
Ties within bfloat16 rounding go to the lower entry, so on one device the proposals do not depend on block sizes
or ranks; a CPU and a GPU may break such a near-tie differently (docs/architecture.md, Exactness).

On the first benchmark's half and patch copies (real slices, 10 per kind, seeds 0-3: 80 copies) the proposals
held the copy's source or the training slice it was pasted into for every copy, where the first whole-image
candidates missed both for most. The second proposal (from the windows that do not see the copied part) is the
slice it was pasted into: a second chance where the copied part's own windows propose a look-alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthgate.audit.candidates import DESCRIPTOR_SIZE, best_distinct
from synthgate.audit.plan import ALIGN_WORK_BYTES
from synthgate.audit.scores import MIN_WINDOW_BRAIN, brain_mask, grid_sums, high_pass

WINDOW_FRACTION = 1 / 2  # the proposal windows' side, as a fraction of the pooled image's
STRIDE_FRACTION = 1 / 4  # their stride

#: Window candidates kept per query (each is one more full-resolution pair of the extra scores): the copied part's
#: source and the slice it was pasted into.
WINDOW_CANDIDATES = 2


def proposal_dtype(device: str) -> Any:
    """bfloat16 where the device multiplies it natively (CUDA; a CPU with AVX-512 BF16 or AMX, through oneDNN),
    else float32: a CPU without it emulates bfloat16 several times slower than float32."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return torch.bfloat16 if native else torch.float32


def proposal_grid(h: int, w: int) -> tuple[int, int, int, int]:
    """(height, width, row stride, column stride) of the proposal windows on an h x w pooled image: a 3 x 3 grid
    of half-size windows. Large windows keep the descriptors few (2.25 x the pooled image) and each still holds
    a copied half or quarter-area patch mostly; the partial score's small windows then measure the pair."""
    return (max(1, int(h * WINDOW_FRACTION)), max(1, int(w * WINDOW_FRACTION)),
            max(1, int(h * STRIDE_FRACTION)), max(1, int(w * STRIDE_FRACTION)))


def window_bytes(shape: tuple[int, int, int], device: str) -> int:
    """Bytes of one image's window descriptors as the index holds them (on ``device``)."""
    n_windows, values = window_layout(shape)
    return n_windows * values * proposal_dtype(device).itemsize


def window_layout(shape: tuple[int, int, int]) -> tuple[int, int]:
    """(windows per image, values per window descriptor) of C x H x W feature images: the windows are cut from
    the images pooled to at most :data:`~synthgate.audit.candidates.DESCRIPTOR_SIZE` a side."""
    c, h, w = (shape[0], *(min(s, DESCRIPTOR_SIZE) for s in shape[1:]))
    kh, kw, sh, sw = proposal_grid(h, w)
    return ((h - kh) // sh + 1) * ((w - kw) // sw + 1), c * kh * kw


def window_descriptors(pooled: Any, mirrored: bool = False, dtype: Any = None) -> Any:
    """Window descriptors of pooled feature images (torch, n x C x h x w, from
    :func:`~synthgate.audit.candidates.descriptor_images`), or of their mirrors: W x n x D (windows first, so
    that each window's rows are one contiguous matrix), zero for windows with too little brain.

    Each window's mean and norm come from the window sums (:func:`~synthgate.audit.scores.grid_sums`) of the
    residual and its square (a pass over the small image, not over the 2.25x larger stack of overlapping
    windows), and the centred, scaled windows are written straight into the W x n x D result in
    ``dtype``.
    """
    import torch

    x = pooled.float()
    if mirrored:
        x = torch.flip(x, dims=(-1,))  # adaptive pooling bins are mirror-symmetric: the mirror's pooled image
    n, c, h, w = x.shape
    kh, kw, sh, sw = grid = proposal_grid(h, w)
    residual = high_pass(x)
    _whole, (sums, squares, brain) = grid_sums([residual, residual * residual, brain_mask(x).to(x.dtype)], grid)
    mean = sums / (kh * kw)  # n x C x gh x gw
    spread = (squares - sums * mean).clamp_min(0)
    scale = (brain >= MIN_WINDOW_BRAIN * kh * kw) / (spread.sqrt().clamp_min(1e-12) * c**0.5)
    gh, gw = mean.shape[-2:]
    win = residual.unfold(2, kh, sh).unfold(3, kw, sw)  # n x C x gh x gw x kh x kw (a view)
    centred = (win - mean[..., None, None]).mul_(scale[..., None, None])
    out = torch.empty((gh * gw, n, c * kh * kw), dtype=dtype or torch.float32, device=x.device)
    out.view(gh, gw, n, c, kh, kw).copy_(centred.permute(2, 3, 0, 1, 4, 5))
    return out


def window_candidates(
    queries: Any,
    mirrors: Any | None,
    db: Any,
    db_valid: np.ndarray,
    k: int,
    per_image: int,
    db_groups: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
) -> np.ndarray:
    """n x k index entries proposed by each query's windows (-1 where fewer exist).

    Each window position that holds brain proposes the training entry whose window there matches the query's
    best; the proposals are ranked by that match and the first ``k`` distinct entries kept. A partial copy has
    two sources (the copied part and the slice it was pasted into), and the windows that do not see the first
    often propose the second.

    Args:
        queries: W x n x D window descriptors of the queries (:func:`window_descriptors`), in ``db``'s dtype and
            on its device.
        mirrors: the same of the queries' mirrors (scored as entries ``2 j + 1``), or ``None`` without mirrors.
        db: W x N x D window descriptors of the training images.
        db_valid: N bools; zero-variance training images are never proposed.
        k: entries kept per query.
        per_image: index entries per training image (2 with mirrors).
        db_groups, query_groups: a query never gets a training image of its own group.
    """
    import torch

    n_windows, n, total = int(db.shape[0]), int(queries.shape[1]), int(db.shape[1])
    views = [queries] if mirrors is None else [queries, mirrors]
    out = np.full((n, k), -1, np.int64)
    if n == 0 or total == 0 or k == 0:
        return out
    device = db.device
    bad = torch.from_numpy(~np.asarray(db_valid, bool)).to(device)[None, :]
    if db_groups is not None and query_groups is not None:
        bad = bad | (torch.from_numpy(np.asarray(query_groups))[:, None].to(device)
                     == torch.from_numpy(np.asarray(db_groups))[None, :].to(device))
    stacked = torch.cat(views, dim=1)  # W x (views n) x D
    chunk = max(1, ALIGN_WORK_BYTES // (4 * n * len(views)))  # training rows per pass (its scores, mirrors too)
    best = torch.full((n_windows, n), -torch.inf, device=device)  # each window's best score so far, and entry
    entry = torch.full((n_windows, n), -1, dtype=torch.int64, device=device)
    for a in range(0, total, chunk):
        b = min(total, a + chunk)
        mask = bad[:, a:b]
        masked = bool(mask.any())
        for w in range(n_windows):
            s = (stacked[w] @ db[w, a:b].T).reshape(len(views), n, b - a)  # one product for a query and its mirror
            if masked:
                s = s.masked_fill(mask[None], -torch.inf)
            for mirrored in range(len(views)):
                value, col = s[mirrored].max(dim=1)
                value = value.float()
                better = value > best[w]  # ties keep the earlier entry (lower row, unmirrored first)
                best[w] = torch.where(better, value, best[w])
                entry[w] = torch.where(better, (a + col) * per_image + mirrored, entry[w])
    # a window with too little brain in the query and in its mirror is zero: its "best" entry is arbitrary
    live = (stacked.abs().amax(dim=-1) > 0).reshape(n_windows, len(views), n).any(dim=1)
    best = best.masked_fill(~live, -torch.inf)
    return best_distinct(entry.T.cpu().numpy(), best.T.cpu().numpy(), k)  # over the n x W window proposals
