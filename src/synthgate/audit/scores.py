"""Scores of an aligned (query, training) pair beyond whole-image Pearson r, to separate copies from anatomy.

Whole-slice Pearson r is dominated by the brain outline: two different patients' slices at the same level
correlate at 0.95-0.97, so its threshold sits at the top of natural anatomical similarity. Two scores look at
what a copy shares and another patient does not:

* **structure**: Pearson r of the high-pass residuals (each image minus its Gaussian-smoothed envelope, sigma
  :data:`SIGMA_FRACTION` of the side), inside the union of the two brain masks: texture, sulci and tumour
  boundaries rather than the outline, and tolerant of monotone intensity changes (gamma, contrast), which
  mostly change the envelope;
* **partial**: the mean structure correlation over the best :data:`LOCAL_TOP_FRACTION` of small windows (3/16 of
  the side, at a 1/32-side stride) that hold enough brain: a copied region of about a tenth of the slice or more
  (a half slice, a tumour region pasted into another brain) scores near 1 there however much of the rest differs,
  while two patients' best windows stay near 0.8-0.9.

Why small windows and a top fraction rather than the best of a few large windows: on the first benchmark's real
slices (5 patients, each against each other one), a 3 x 3 grid of half-size windows put a pasted quarter-area
patch at 0.48-0.60 when it straddled the grid, below natural pairs' 0.64; the best 5 % of 24 px windows put every
patch and half copy at 0.96-1.00 against natural pairs' 0.73-0.87.

Both work on Pearson feature images already aligned by :mod:`synthgate.audit.refine` (the training image moved
onto the query) and are calibrated on the holdout like the whole-image score.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SIGMA_FRACTION = 1 / 40
LOCAL_STRIDE_FRACTION = 1 / 32  # the partial score's window stride, as a fraction of the side
LOCAL_WINDOW_STRIDES = 6  # its window side, in strides (3/16 of the side)
LOCAL_TOP_FRACTION = 0.05  # the partial score averages the best this fraction of the windows with brain
MIN_WINDOW_BRAIN = 0.3  # a window counts when at least this fraction of it is brain


def brain_mask(x: Any) -> Any:
    """n x 1 x H x W bools: pixels that differ from the background (the corner value) in some channel by more
    than 5 % of the channel's standard deviation.

    The deviation is the norm of the centred channel over sqrt(n - 1), the same two-pass value as ``std``:
    torch's CPU ``std`` over a 128 x 128 channel took a quarter of the structure and partial scores' time,
    ``vector_norm`` a twentieth of that.
    """
    import torch

    bg = x[..., :1, :1]
    flat = x.flatten(2)
    centred = flat - flat.mean(dim=2, keepdim=True)
    scale = (torch.linalg.vector_norm(centred, dim=2) / max(1, flat.shape[2] - 1) ** 0.5)[..., None, None]
    return (torch.abs(x - bg) > 0.05 * scale.clamp_min(1e-12)).any(dim=1, keepdim=True)


def high_pass(x: Any) -> Any:
    """Each channel minus its smooth envelope: two passes of a box filter of side ~ 2.45 sigma (a Gaussian of
    sigma :data:`SIGMA_FRACTION` of the side, to a few percent), on the image padded by replicating its edge.

    Each box filter is separable, and each 1-D window sum is built by doubling (:func:`_window_sums`): about
    ``2 log2 k`` vectorised additions, twice as fast on the CPU as differences of running sums (``cumsum`` is a
    sequential scan), and each sum holds at most ``k`` terms, so its rounding stays near 1e-7 of the largest value.
    """
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    sigma = max(1.0, SIGMA_FRACTION * max(h, w))
    k = max(3, round(sigma * 6**0.5) | 1)  # odd; two box passes have sd k / sqrt(6)
    p = k // 2
    env = x
    for _ in range(2):
        env = F.pad(env, (p, p, p, p), mode="replicate")
        env = _window_sums(_window_sums(env, k, -1), k, -2).mul_(1.0 / (k * k))
    return x - env


def _window_sums(x: Any, k: int, dim: int) -> Any:
    """Sums of ``k`` consecutive values along ``dim`` (length L - k + 1): ``k`` written in binary, the window is
    a run of blocks of 1, 2, 4 ... values, and each block size is the previous one added to itself shifted."""
    n_out = x.shape[dim] - k + 1
    out, offset, blocks, size = None, 0, x, 1
    while True:
        if k & 1:
            part = blocks.narrow(dim, offset, n_out)
            out = part.clone() if out is None else out.add_(part)
            offset += size
        k >>= 1
        if not k:
            return out
        m = blocks.shape[dim] - size
        blocks = blocks.narrow(dim, 0, m) + blocks.narrow(dim, size, m)  # sums of 2 * size values
        size *= 2


def local_grid(h: int, w: int) -> tuple[int, int, int, int]:
    """(height, width, row stride, column stride) of the partial score's windows on an H x W image."""
    sh, sw = max(1, round(h * LOCAL_STRIDE_FRACTION)), max(1, round(w * LOCAL_STRIDE_FRACTION))
    return min(h, LOCAL_WINDOW_STRIDES * sh), min(w, LOCAL_WINDOW_STRIDES * sw), sh, sw


def grid_sums(products: list[Any], grid: tuple[int, int, int, int],
              by_blocks: bool = True) -> tuple[list[Any], list[Any]]:
    """(whole-image sums, window sums) of each product image (n x c x H x W) over a grid of windows
    ``(height, width, row stride, column stride)``: the partial score's (:func:`local_grid`) or the window
    proposals' (:func:`synthgate.audit.windows.proposal_grid`).

    When each window is a whole number of stride blocks and the blocks tile the image (128 or 256 px), each
    product is summed once into blocks, and the windows (sums of blocks, by :func:`_window_sums`) and the whole
    image are sums of blocks: one pass over the image instead of one per window (``by_blocks``).
    """
    import torch.nn.functional as F

    kh, kw, sh, sw = grid
    h, w = products[0].shape[-2:]
    if by_blocks and kh % sh == 0 and kw % sw == 0 and h % sh == 0 and w % sw == 0:
        blocks = [t.reshape(*t.shape[:-2], h // sh, sh, w // sw, sw).sum(dim=(-3, -1)) for t in products]
        whole = [b.sum(dim=(-2, -1), keepdim=True) for b in blocks]
        windows = [_window_sums(_window_sums(b, kh // sh, -2), kw // sw, -1) for b in blocks]
        return whole, windows
    whole = [t.sum(dim=(-2, -1), keepdim=True) for t in products]
    windows = [F.avg_pool2d(t, (kh, kw), (sh, sw)) * (kh * kw) for t in products]
    return whole, windows


def best_fraction_mean(values: Any, valid: Any, fraction: float) -> Any:
    """Per row of ``values`` (n x m), the mean of its best ``max(1, round(fraction * k))`` valid values, where
    ``k`` is the row's number of valid ones; -1 for a row without any."""
    import torch

    count = valid.sum(dim=1)
    if not len(count):
        return values.new_zeros(0)
    take = (count * fraction).round().clamp_min(1).long()
    top = values.masked_fill(~valid, float("-inf")).topk(min(values.shape[1], int(take.max())), dim=1).values
    csum = top.masked_fill(torch.isinf(top), 0.0).cumsum(dim=1)
    mean = csum.gather(1, (take.clamp_max(top.shape[1]) - 1)[:, None])[:, 0] / take
    return mean.masked_fill(count == 0, -1.0)


def _masked_pearson(sums: list[Any]) -> tuple[Any, Any]:
    """Channel-averaged Pearson r over masked pixels from their sums (count, a, b, a a, b b, a b), and the count."""
    count, sa, sb, saa, sbb, sab = sums
    cnt = count.clamp_min(1.0)
    ma, mb = sa / cnt, sb / cnt
    cov = sab / cnt - ma * mb
    var = (saa / cnt - ma * ma).clamp_min(0) * (sbb / cnt - mb * mb).clamp_min(0)
    r = cov / var.sqrt().clamp_min(1e-30)
    return r.mean(dim=1), count[:, 0]


def structure_and_partial(query: Any, aligned: Any, pair_query: Any | None = None,
                          by_blocks: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(structure, partial) scores of n aligned pairs of feature images (torch tensors): ``aligned`` is
    n x C x H x W; ``query`` is n x C x H x W, or, with ``pair_query`` (n indices), the q x C x H x W distinct
    queries of the pairs, so that a query's mask and high-pass residual are computed once for all its pairs.
    ``by_blocks=False`` sums every window directly (the reference of the block sums, see :func:`grid_sums`)."""
    h, w = query.shape[-2:]
    mq, rq = brain_mask(query), high_pass(query.float())
    if pair_query is not None:
        mq, rq = mq[pair_query], rq[pair_query]
    m = (mq | brain_mask(aligned)).to(rq.dtype)
    ra = high_pass(aligned.float())
    am, bm = rq * m, ra * m
    grid = local_grid(h, w)
    whole, windows = grid_sums([m, am, bm, rq * am, ra * bm, rq * bm], grid, by_blocks)
    structure, _ = _masked_pearson(whole)
    local, brain = _masked_pearson(windows)
    partial = best_fraction_mean(local.flatten(1), brain.flatten(1) >= MIN_WINDOW_BRAIN * grid[0] * grid[1],
                                 LOCAL_TOP_FRACTION)
    return structure.flatten(1)[:, 0].cpu().numpy(), partial.cpu().numpy()
