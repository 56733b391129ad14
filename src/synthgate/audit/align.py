"""Alignment: the best Pearson r of each query with its candidates over shifts, rotations and zooms, batched.

For a block of queries at once, on the torch device of the feature cache:

1. every (query, candidate) pair is correlated at every shift up to ``max_shift`` by FFT: the circular
   cross-correlation of the Pearson feature images is the channel-averaged Pearson r of the pair at each shift
   (brain slices have a dark background, so the wrap-around is background);
2. the ``refine`` best candidates of each query are correlated again with the query warped back by every
   rotation / zoom of the grid (``grid_sample``), then re-normalised.

The identity is in the grid, so an alignment never scores below the unaligned pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from synthgate.audit.features import renormalise
from synthgate.audit.transforms import Warp, forward_shift, warp_each, warp_views


@dataclass(frozen=True)
class Alignment:
    """Best alignment of each query (arrays of length n).

    Attributes:
        score: Pearson r at the best alignment, as the FFT correlation found it (-inf without candidates); the
            score a match reports is recomputed in float64 at the refined transform (:mod:`synthgate.audit.refine`).
        entry: the index entry of the best candidate (-1 without candidates).
        angle_deg, scale, shift_y, shift_x: the forward transform (training -> synthetic) of the match, in the
            conventions of :mod:`synthgate.audit.transforms` (the shift in pixels, not always whole: it is whole
            in the frame of the warped query).
    """

    score: np.ndarray
    entry: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray
    shift_y: np.ndarray
    shift_x: np.ndarray

    def subset(self, rows: np.ndarray) -> Alignment:
        """The alignments of ``rows``, in that order."""
        return Alignment(*(getattr(self, f.name)[rows] for f in fields(self)))

    @staticmethod
    def concat(parts: list[Alignment]) -> Alignment:
        """The alignments of several blocks, one after another."""
        return Alignment(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Alignment)))


#: The identity warp's best pair is a second starting point of the refinement when the grid's winner beat it by
#: at most this: then the grid could not tell them apart (on real slices a third of the queries with another
#: winner, 0.001 for the copy that needed it), and the second refinement costs about as much as the first.
IDENTITY_START_MARGIN = 0.01

#: Images at least this side search the rotation / zoom grid at half resolution (2 x 2 means, re-normalised; the
#: queries are pooled, then warped, a quarter of the warp work): the grid only picks each query's best (warp,
#: candidate); that pair is then warped and correlated at full resolution over every shift, and the gradient
#: refinement and the final float64 score follow at their own resolutions.
GRID_HALF_MIN_SIDE = 64


def _window(corr: Any, max_shift: int) -> Any:
    """... x S x S window of circular correlations (S = 2 s + 1, shift -s first) from ... x H x W."""
    import torch

    h, w = corr.shape[-2:]
    sy, sx = min(max_shift, (h - 1) // 2), min(max_shift, (w - 1) // 2)
    rows = torch.cat([corr[..., h - sy :, :], corr[..., : sy + 1, :]], dim=-2) if sy else corr[..., :1, :]
    return torch.cat([rows[..., w - sx :], rows[..., : sx + 1]], dim=-1) if sx else rows[..., :1]


def _best_shift(fq: Any, fc: Any, shape: tuple[int, int], max_shift: int) -> tuple[Any, Any]:
    """(max over the shift window, flat argmax in the window) of the circular correlations of every view of each
    query with each of its candidates: ``fq`` n x G x C x H x Wf and ``fc`` n x M x C x H x Wf spectra give
    n x G x M results.

    The cross-spectrum is summed over channels with in-place multiply-adds, one channel at a time: a contiguous
    result (the inverse FFT of a strided one is slower) in about 30 % less time than ``einsum``.
    """
    import torch

    a = fq.conj()
    prod = a[:, :, None, 0] * fc[:, None, :, 0]
    for ch in range(1, fq.shape[2]):
        prod.addcmul_(a[:, :, None, ch], fc[:, None, :, ch])
    win = _window(torch.fft.irfft2(prod, s=shape), max_shift)
    best, arg = win.flatten(-2).max(dim=-1)
    return best, arg


def align_block(
    queries: Any,
    query_valid: np.ndarray,
    entries: np.ndarray,
    read_entries: Callable[[np.ndarray], Any],
    warps: tuple[Warp, ...],
    max_shift: int,
    refine: int = 8,
    always: np.ndarray | None = None,
    identity_starts: bool = False,
) -> Alignment:
    """Align each of ``n`` queries with its candidate entries.

    Args:
        queries: n x C x H x W feature images (torch, on the search device).
        query_valid: n bools; invalid (zero-variance) queries get no alignment.
        entries: n x M index entries (-1 = none).
        read_entries: unique entries -> their feature images (u x C x H x W torch tensor, mirrored where the
            entry is a mirror), from the feature cache.
        warps: the rotation / zoom grid (identity first).
        max_shift: largest translation, pixels, along each axis.
        refine: candidates per query searched over the whole warp grid: those marked in ``always`` (n x M bools,
            e.g. the descriptor's proposals, which may correlate poorly before the warp), then the best at the
            identity warp.
        identity_starts: also return, as rows ``n .. 2n - 1``, each query's best candidate at the identity warp
            (shifted) where the grid's winner is another (warp, candidate) that beat it by at most
            :data:`IDENTITY_START_MARGIN`; entry -1 elsewhere. A second starting point for the
            refinement: a copy turned by 3-5 degrees lies nearer the identity than a grid step, and on a
            near-symmetric slice a mirrored neighbour can win the grid by a hair (0.951 against the source's 0.950
            on a real slice), then refine to 0.953 where the source refines to 0.999.
    """
    import torch
    import torch.nn.functional as F

    n, m = entries.shape
    h, w = queries.shape[-2:]
    s = min(max_shift, (h - 1) // 2), min(max_shift, (w - 1) // 2)
    out = Alignment(np.full(n, -np.inf), np.full(n, -1, np.int64), np.zeros(n), np.ones(n), np.zeros(n), np.zeros(n))
    usable = (entries >= 0) & query_valid[:, None]
    if not usable.any():
        return out
    uniq, inv = np.unique(np.where(usable, entries, -1), return_inverse=True)
    inv = inv.reshape(n, m)
    has_none = uniq[0] < 0
    feats = read_entries(uniq[1:] if has_none else uniq)

    def candidate_spectra(x: Any) -> Any:  # one per column of ``uniq``: column 0 may stand for "no candidate"
        spec = torch.fft.rfft2(x)
        return torch.cat([torch.zeros_like(spec[:1]), spec]) if has_none else spec

    spectra = candidate_spectra(feats)
    dev = spectra.device
    cidx = torch.from_numpy(inv).to(dev)
    mask = torch.from_numpy(usable).to(dev)
    fq = torch.fft.rfft2(queries)
    best0, arg0 = _best_shift(fq[:, None], spectra[cidx], (h, w), max_shift)
    best0, arg0 = best0[:, 0], arg0[:, 0]
    best0 = best0.masked_fill(~mask, -torch.inf)
    score, col = best0.max(dim=1)
    arg = arg0.gather(1, col[:, None])[:, 0]
    identity = (score, col, arg)  # the warp search below rebinds these names, never writes into them
    g_best = torch.zeros(n, dtype=torch.long, device=dev)
    rest = tuple(wp for wp in warps if not wp.identity)
    if rest:
        r = min(refine, m)
        key = best0 if always is None else best0 + 4.0 * torch.from_numpy(always & usable).to(dev)
        top = torch.topk(key, r, dim=1).indices  # n x r columns
        half = min(h, w) >= GRID_HALF_MIN_SIDE
        if half:  # the grid at half resolution: a quarter of the warp and FFT work (see GRID_HALF_MIN_SIDE)
            vh = renormalise(warp_views(F.avg_pool2d(queries, 2), rest)).flatten(0, 1)
            sh = candidate_spectra(renormalise(F.avg_pool2d(feats, 2)))
            fv = torch.fft.rfft2(vh).reshape(n, len(rest), *sh.shape[1:])
            bw, aw = _best_shift(fv, sh[cidx.gather(1, top)], tuple(vh.shape[-2:]), (max_shift + 1) // 2)
        else:
            views = renormalise(warp_views(queries, rest))  # n x G x C x H x W
            bw, aw = _best_shift(torch.fft.rfft2(views), spectra[cidx.gather(1, top)], (h, w), max_shift)
        bw = bw.masked_fill(~mask.gather(1, top)[:, None, :], -torch.inf)
        sw, jw = bw.flatten(1).max(dim=1)
        g = jw // r
        col_w = top.gather(1, (jw % r)[:, None])[:, 0]
        if half:  # each query's winning (warp, candidate) is scored over the shift window at full resolution,
            # so it competes with the identity warp on the same footing
            won = renormalise(warp_each(queries, rest, g))
            sf, af = _best_shift(torch.fft.rfft2(won)[:, None], spectra[cidx.gather(1, col_w[:, None])], (h, w),
                                 max_shift)
            sw = torch.where(torch.isfinite(sw), sf[:, 0, 0], sw)
            arg_w = af[:, 0, 0]
        else:
            arg_w = aw.flatten(1).gather(1, jw[:, None])[:, 0]
        better = sw > score
        score = torch.where(better, sw, score)
        col = torch.where(better, col_w, col)
        arg = torch.where(better, arg_w, arg)
        g_best = torch.where(better, g + 1, g_best)
    grid = (warps[0], *rest) if warps and warps[0].identity else (Warp(0.0, 1.0), *rest)
    _fill(out, entries, grid, s, score, col, arg, g_best)
    if not identity_starts:
        return out
    second = Alignment(np.full(n, -np.inf), np.full(n, -1, np.int64), np.zeros(n), np.ones(n), np.zeros(n),
                       np.zeros(n))
    other = ((g_best != 0) | (identity[1] != col)) & (identity[0] >= score - IDENTITY_START_MARGIN)
    _fill(second, entries, grid, s, identity[0].masked_fill(~other, -torch.inf), identity[1], identity[2],
          torch.zeros_like(g_best))
    return Alignment.concat([out, second])


def _fill(out: Alignment, entries: np.ndarray, grid: tuple[Warp, ...], s: tuple[int, int], score: Any, col: Any,
          arg: Any, g: Any) -> None:
    """Write each query's (score, candidate column, shift index, grid warp) into ``out`` as a forward transform
    (queries with a non-finite score keep entry -1)."""
    score_np = score.double().cpu().numpy()
    col_np, arg_np, g_np = col.cpu().numpy(), arg.cpu().numpy(), g.cpu().numpy()
    for i in np.flatnonzero(np.isfinite(score_np)):
        wp = grid[int(g_np[i])]
        dy = int(arg_np[i]) // (2 * s[1] + 1) - s[0]
        dx = int(arg_np[i]) % (2 * s[1] + 1) - s[1]
        ty, tx = forward_shift(wp.angle_deg, wp.scale, dy, dx)
        out.score[i] = score_np[i]
        out.entry[i] = entries[i, int(col_np[i])]
        out.angle_deg[i] = wp.angle_deg
        out.scale[i] = wp.scale
        out.shift_y[i] = ty + 0.0  # no negative zero
        out.shift_x[i] = tx + 0.0

