"""Candidates for the alignment: training images a moved copy may come from, which pixel search can miss.

A shifted copy has a low pixel correlation with its source, so the exact pixel top-k may not contain it. The
**shift-invariant descriptor** (square root of the low-frequency Fourier magnitude of each centred channel,
downsampled) does not change with a translation; the descriptor of each query, of its rotated views (the
descriptor is not rotation invariant) and of its mirror, searched against the training descriptors, proposes
``k`` more candidates per query. This is a proposal, not a score: every candidate is scored by the alignment.

Mirroring an image left-right maps its Fourier magnitude at vertical frequency ``ku`` to ``-ku`` (a real image's
spectrum is conjugate-symmetric), so the descriptor is written in a mirror basis, like the pixel features
(:mod:`synthgate.audit.basis`): ``sym`` (row ``0``, and rows ``ku`` and ``-ku`` summed / sqrt 2) then ``anti``
(their difference / sqrt 2). A mirrored image's descriptor is the same with ``anti`` negated, so two half-size
products score every view of a query and of its mirror against the training descriptors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DESCRIPTOR_SIZE = 32  # feature images are area-downsampled to at most this side before the Fourier transform
DESCRIPTOR_FREQ = 6  # keep frequencies |u|, |v| <= this


def descriptor_images(x: Any) -> Any:
    """Feature images (torch, ... x H x W) area-downsampled to the descriptor's side (no copy when small).

    Adaptive pooling bins are mirror-symmetric, so the descriptor images of a mirrored image are the mirrored
    descriptor images (to float rounding): the audit pools once and mirrors the small images. Where the side is a
    multiple of the descriptor's (128, 256 px), the bins are equal blocks, summed by a reshape: a third of
    ``adaptive_avg_pool2d``'s time on the CPU.
    """
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if max(h, w) <= DESCRIPTOR_SIZE:
        return x
    lead = x.shape[:-2]
    oh, ow = min(h, DESCRIPTOR_SIZE), min(w, DESCRIPTOR_SIZE)
    if h % oh == 0 and w % ow == 0:
        fh, fw = h // oh, w // ow
        rows = x.reshape(*lead, oh, fh, w).sum(dim=-2)
        return rows.reshape(*lead, oh, ow, fw).sum(dim=-1).mul_(1.0 / (fh * fw))
    pooled = F.adaptive_avg_pool2d(x.reshape(-1, 1, h, w), (oh, ow))
    return pooled.reshape(*lead, *pooled.shape[-2:])


def descriptors(vectors: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Shift-invariant descriptors of feature vectors (n x C*H*W), or of images already passed through
    :func:`descriptor_images`: n x D float32, centred and of unit norm over the kept magnitudes, then written in
    the mirror basis (``sym`` first: :func:`descriptor_sym_size` columns)."""
    import torch

    x = vectors if isinstance(vectors, torch.Tensor) else torch.from_numpy(np.asarray(vectors, np.float32))
    x = descriptor_images(x.float().reshape(-1, *shape))
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    x = x / x.flatten(2).norm(dim=2).clamp_min(1e-12)[..., None, None]
    mag = torch.fft.rfft2(x).abs()
    plus, minus, alone, cols = _frequencies(mag.shape[-2], mag.shape[-1])
    parts = [mag[..., rows, :cols].sqrt().double() for rows in (alone, plus, minus)]  # n x C x rows x cols
    n = len(mag)
    flat = torch.cat([p.reshape(n, -1) for p in parts], dim=1)
    mean = flat.mean(dim=1, keepdim=True)
    scale = (flat - mean).norm(dim=1, keepdim=True).clamp_min(1e-300)
    a, p, m = ((q - mean[..., None, None]) / scale[..., None, None] for q in parts)
    h = 0.5**0.5
    sym = torch.cat([a, (p + m) * h], dim=-2)
    d = torch.cat([sym.reshape(n, -1), ((p - m) * h).reshape(n, -1)], dim=1)
    return d.float().cpu().numpy()


def _frequencies(h: int, w_half: int) -> tuple[list[int], list[int], list[int], int]:
    """The kept spectrum: rows ``ku`` (0 < ku <= m), their mirror rows ``-ku``, the rows that are their own mirror
    (``0``, and ``h / 2`` when kept), and the number of columns (``m + 1``)."""
    m = min(DESCRIPTOR_FREQ, h // 2, w_half - 1)
    pairs = [(k, h - k) for k in range(1, m + 1) if k != h - k]
    alone = [0] + [k for k in range(1, m + 1) if k == h - k]
    return [a for a, _ in pairs], [b for _, b in pairs], alone, m + 1


def _kept_rows(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(rows that are their own mirror, mirror pairs of rows, columns x channels) of the kept spectrum of C x H x W
    feature images, as :func:`descriptors` keeps it from the pooled images."""
    c, h, w = shape
    plus, _minus, alone, cols = _frequencies(min(h, DESCRIPTOR_SIZE), min(w, DESCRIPTOR_SIZE) // 2 + 1)
    return len(alone), len(plus), c * cols


def descriptor_size(shape: tuple[int, int, int]) -> int:
    """Columns of the descriptors of C x H x W feature images (``sym`` and ``anti``)."""
    alone, pairs, per_row = _kept_rows(shape)
    return (alone + 2 * pairs) * per_row


def descriptor_sym_size(shape: tuple[int, int, int]) -> int:
    """Columns of the ``sym`` part of the descriptors of C x H x W feature images."""
    alone, pairs, per_row = _kept_rows(shape)
    return (alone + pairs) * per_row


def descriptor_candidates(
    view_descriptors: np.ndarray,
    db_descriptors: np.ndarray,
    db_valid: np.ndarray,
    k: int,
    per_image: int,
    n_views: int,
    n_sym: int | None,
    db_groups: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """n x k index entries nearest to each query by descriptor, over its views (best view per entry first).

    Args:
        view_descriptors: (n * n_views) x D descriptors (:func:`descriptors`), ordered query, then view.
        db_descriptors: N x D training descriptors; ``db_valid`` masks zero-variance images.
        k: entries kept per query.
        per_image: index entries per training image (2 with mirrors: entry ``2 j + 1`` is image ``j`` mirrored).
        n_views: rotated views per query (identity first).
        n_sym: with mirrors, the ``sym`` columns of a descriptor (:func:`descriptor_sym_size`): each view's
            mirror is scored too, from the same two half-size products; ``None`` without mirrors.
        db_groups, query_groups: a query never gets a training image of its own group.
        device: torch device of the product.

    Returns:
        n x k int64 entries, -1 where fewer exist.
    """
    import torch

    m = 1 if n_sym is None else 2
    n = len(view_descriptors) // n_views
    kk = min(k, len(db_descriptors))
    out = np.full((n, k), -1, dtype=np.int64)
    if n == 0 or kk == 0:
        return out
    q = torch.from_numpy(view_descriptors).to(device)
    db = torch.from_numpy(db_descriptors).to(device)
    if n_sym is None:
        s = (q @ db.T).reshape(n, 1, n_views, -1)
    else:
        sym, anti = q[:, :n_sym] @ db[:, :n_sym].T, q[:, n_sym:] @ db[:, n_sym:].T
        s = torch.stack([(sym + anti).reshape(n, n_views, -1), (sym - anti).reshape(n, n_views, -1)], dim=1)
    bad = torch.from_numpy(~db_valid)[None, :].to(device)
    if query_groups is not None and db_groups is not None:
        qg = torch.from_numpy(np.asarray(query_groups))[:, None].to(device)
        bad = bad | (qg == torch.from_numpy(db_groups)[None, :].to(device))  # n x N (or 1 x N)
    s = s.masked_fill(bad[:, None, None, :], -torch.inf)  # n x m x views x N
    top = torch.topk(s, kk, dim=-1)
    rows = top.indices.reshape(n, m, n_views * kk).cpu().numpy().astype(np.int64)
    flip = np.broadcast_to(np.arange(m)[None, :, None], rows.shape)
    entries = (rows * per_image + (flip if per_image == 2 else 0)).reshape(n, -1)
    return best_distinct(entries, top.values.reshape(n, -1).cpu().numpy(), k)


def best_distinct(entries: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """n x k: each row's first ``k`` distinct entries in order of falling score (the earlier column first on a
    tie; entries with a non-finite score are dropped), -1 where fewer exist."""
    out = np.full((len(entries), k), -1, dtype=np.int64)
    for i in range(len(entries)):
        order = np.argsort(-scores[i], kind="stable")
        uniq = list(dict.fromkeys(int(e) for e, v in zip(entries[i, order], scores[i, order], strict=True)
                                  if np.isfinite(v)))[:k]
        out[i, : len(uniq)] = uniq
    return out
