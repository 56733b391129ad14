"""Exact top-k inner-product search over a database streamed in blocks.

Every backend works in two passes over the database:

1. **candidates**: a fast low-precision search keeps, per query, the ``k + pad`` best *approximate* scores
   (faiss ``IndexFlatIP`` on CPU, torch fp32 matmul + topk on any device, or torch bf16 matmul);
2. **exact re-rank**: the candidates are re-scored in float64 (:func:`exact_dot`) and sorted by
   (score descending, database index ascending), so ties go to the lowest index.

The first pass also records, per query, the largest approximate score ``U`` it did *not* keep. With ``B`` a
proven bound on the approximate score's error (:func:`error_bound`), no unkept item can score more than
``U + B``; when that is below the k-th exact score the top-k is provably the exact one. Otherwise (rare) the
query is searched exhaustively in float64. Results are therefore identical across backends and equal to the
brute-force float64 search, whatever the precision of the candidate pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from synthgate.errors import UsageError

logger = logging.getLogger(__name__)

U_FP32 = 2.0**-24
U_BF16 = 2.0**-8


class Backend(StrEnum):
    """Candidate-search backends."""

    FAISS = "faiss"  # faiss IndexFlatIP, fp32, CPU
    TORCH = "torch"  # torch fp32 matmul + topk (CPU or CUDA)
    BF16 = "bf16"  # torch bf16 matmul + topk, then exact re-rank


@dataclass(frozen=True)
class DbBlock:
    """One block of the database: rows ``start .. start + len(vectors)``."""

    start: int
    vectors: np.ndarray  # n_b x d float32
    valid: np.ndarray | None = None  # n_b bools; invalid rows are never returned
    groups: np.ndarray | None = None  # n_b ints; rows of a query's own group are never returned


#: A callable returning a fresh iterator over the database blocks (the search reads them twice).
Database = Callable[[], Iterator[DbBlock]]


@dataclass(frozen=True)
class TopK:
    """Exact top-k of each query.

    Attributes:
        scores: n_q x k float64 exact scores, descending; ``-inf`` where the database had fewer items.
        indices: n_q x k int64 database indices; ``-1`` where the database had fewer items.
        n_fallback: queries the candidate bound could not settle, searched exhaustively instead.
    """

    scores: np.ndarray
    indices: np.ndarray
    n_fallback: int


def exact_dot(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Inner products of the n x d ``rows`` with the d-vector ``query``, products and sums in float64.

    The exact score of the search (fp32 products are exact in float64); equal rows give equal scores, which
    makes ties, and their resolution to the lowest index, reproducible.
    """
    return np.einsum("ij,j->i", rows, query, dtype=np.float64)


def _norm_upper(x: np.ndarray) -> np.ndarray:
    """Upper bounds on the Euclidean norms of the rows of a float32 array (fp32 arithmetic, inflated by its
    worst-case rounding error)."""
    d = x.shape[1]
    gamma = (d + 2) * U_FP32 / (1.0 - (d + 2) * U_FP32)
    return np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float32).astype(np.float64) * (1.0 + gamma)) * (1 + 1e-7)


def error_bound(backend: Backend, d: int, q_norm: np.ndarray, db_norm_max: float,
                q_round_err: np.ndarray | None = None, db_round_err_max: float = 0.0) -> np.ndarray:
    """Per-query bound on |approximate score - exact score|.

    fp32 (faiss, torch): the dot product of fp32 vectors accumulated in fp32 in any order errs by at most
    ``gamma_d * |q| * |b|`` with ``gamma_d = d u / (1 - d u)``, ``u = 2^-24``. bf16: inputs rounded to bf16
    (rounding errors ``e_q`` measured per query, ``|e_b| <= 2^-8 |b|``), products accumulated in fp32, output rounded to
    bf16: ``|e_q| |b| + |q~| |e_b| + |q~| |b~| (gamma_d + 2^-8 (1 + gamma_d))``.
    """
    gamma = d * U_FP32 / (1.0 - d * U_FP32)
    if backend is Backend.BF16:
        assert q_round_err is not None
        q_t = q_norm + q_round_err  # |q~| <= |q| + |e_q|
        b_t = db_norm_max + db_round_err_max
        return (q_round_err * db_norm_max + q_t * db_round_err_max
                + q_t * b_t * (gamma + U_BF16 * (1.0 + gamma))) * (1.0 + 1e-6)
    return gamma * q_norm * db_norm_max * (1.0 + 1e-6)


def _mask(block: DbBlock, query_groups: np.ndarray | None) -> np.ndarray | None:
    """n_q x n_b bools of the pairs that may be returned, or None when all may."""
    m: np.ndarray | None = None
    if block.valid is not None and not block.valid.all():
        m = np.broadcast_to(block.valid[None, :], (1, len(block.vectors)))
    if query_groups is not None and block.groups is not None:
        g = query_groups[:, None] != block.groups[None, :]
        m = g if m is None else (g & m)
    return m


def _block_candidates(
    q: np.ndarray, block: DbBlock, kf: int, backend: Backend, device: str,
    query_groups: np.ndarray | None, tq: object, tb: object = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approximate top-``kf`` of one block: (scores n_q x kf', global indices, largest unkept score per query)."""
    import torch

    mask = _mask(block, query_groups)
    nb = len(block.vectors)
    if backend is Backend.FAISS and (mask is None or mask.shape[0] == 1):
        import faiss

        rows = np.arange(nb) if mask is None else np.flatnonzero(mask[0])
        index = faiss.IndexFlatIP(q.shape[1])
        index.add(np.ascontiguousarray(block.vectors if mask is None else block.vectors[rows]))
        kk = min(kf + 1, len(rows))
        if kk == 0:
            empty = np.empty((len(q), 0))
            return empty, empty.astype(np.int64), np.full(len(q), -np.inf)
        s, i = index.search(q, kk)
        s = s.astype(np.float64)
        gi = block.start + rows[i]
    else:
        assert isinstance(tq, torch.Tensor)  # built by search_topk
        b = tb if isinstance(tb, torch.Tensor) else torch.from_numpy(block.vectors).to(device=device, dtype=tq.dtype)
        st = (tq @ b.T).float()
        if mask is not None:
            st.masked_fill_(~torch.from_numpy(np.array(mask)).to(st.device), -torch.inf)
        kk = min(kf + 1, nb)
        sv, si = torch.topk(st, kk, dim=1)
        s = sv.cpu().numpy().astype(np.float64)
        gi = block.start + si.cpu().numpy().astype(np.int64)
        s[~np.isfinite(s)] = -np.inf
    # the (kf+1)-th score bounds every item not kept from this block
    if s.shape[1] > kf:
        unkept = s[:, kf]
        s, gi = s[:, :kf], gi[:, :kf]
    else:
        unkept = np.full(len(q), -np.inf)
    gi = np.where(np.isfinite(s), gi, -1)
    return s, gi, unkept


def _merge(s: np.ndarray, i: np.ndarray, kf: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``kf`` best per row; return them and the largest dropped score per row."""
    if s.shape[1] <= kf:
        return s, i, np.full(len(s), -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")
    s = np.take_along_axis(s, order, axis=1)
    i = np.take_along_axis(i, order, axis=1)
    return s[:, :kf], i[:, :kf], s[:, kf]


def search_topk(
    queries: np.ndarray,
    database: Database,
    k: int,
    backend: Backend | str = Backend.FAISS,
    device: str = "cpu",
    pad: int | None = None,
    query_groups: np.ndarray | None = None,
) -> TopK:
    """Exact top-``k`` inner-product neighbours of each query over a streamed database.

    Args:
        queries: n_q x d float32 vectors.
        database: callable returning a fresh iterator of :class:`DbBlock` (read twice, more on fallback).
        k: neighbours per query.
        backend: candidate-search backend (:class:`Backend`); the result does not depend on it.
        device: torch device for the torch backends (``"cpu"`` or ``"cuda"``); faiss runs on CPU.
        pad: extra candidates kept per query (default 8 for fp32, 32 for bf16).
        query_groups: n_q ints; a query never gets a database row of the same group (``DbBlock.groups``).

    Returns:
        :class:`TopK`, ties broken to the lowest database index.

    Raises:
        UsageError: ``k < 1`` or an unknown backend.
    """
    import torch

    if k < 1:
        raise UsageError(f"k must be >= 1, got {k}")
    try:
        backend = Backend(backend)
    except ValueError:
        raise UsageError(f"backend must be one of {[b.value for b in Backend]}, got {backend!r}") from None
    if backend is Backend.FAISS and device != "cpu":
        backend = Backend.TORCH  # faiss-cpu: use torch matmul on the accelerator
    q = np.ascontiguousarray(queries, dtype=np.float32)
    nq, d = q.shape
    kf = k + (pad if pad is not None else (32 if backend is Backend.BF16 else 8))
    tq = None
    q_round_err = None
    if backend is not Backend.FAISS or query_groups is not None:
        tq = torch.from_numpy(q).to(device)
        if backend is Backend.BF16:
            tq = tq.to(torch.bfloat16)
            q_round_err = _norm_upper(q - tq.float().cpu().numpy())
    cand_s = np.empty((nq, 0))
    cand_i = np.empty((nq, 0), dtype=np.int64)
    unkept = np.full(nq, -np.inf)
    db_norm_max = 0.0
    db_round_err_max = 0.0
    n_db = 0
    for block in database():
        if len(block.vectors) == 0:
            continue
        n_db = max(n_db, block.start + len(block.vectors))
        db_norm_max = max(db_norm_max, float(_norm_upper(block.vectors).max()))
        tb = None
        if backend is Backend.BF16:
            tb = torch.from_numpy(block.vectors).to(device=device, dtype=torch.bfloat16)
            # round to nearest: every element errs by at most 2^-8 of itself, so |b - bf16(b)| <= 2^-8 |b|
            db_round_err_max = U_BF16 * db_norm_max
        s, i, u = _block_candidates(q, block, kf, backend, device, query_groups, tq, tb)
        cand_s, cand_i, dropped = _merge(np.concatenate([cand_s, s], 1), np.concatenate([cand_i, i], 1), kf)
        unkept = np.maximum(unkept, np.maximum(u, dropped))
    q_norm = _norm_upper(q)
    bound = error_bound(backend, d, q_norm, db_norm_max, q_round_err, db_round_err_max)
    # a candidate whose best possible score is below the k-th best worst-case score cannot be in the top-k:
    # only the others need the exact (float64) score
    order = np.argsort(-cand_s, axis=1, kind="stable")
    cand_s = np.take_along_axis(cand_s, order, axis=1)
    cand_i = np.take_along_axis(cand_i, order, axis=1)
    if cand_s.shape[1] >= k:
        floor = cand_s[:, k - 1] - 2.0 * bound
        cand_i = np.where(cand_s >= floor[:, None], cand_i, -1)
    exact = _rescore(q, database, cand_i)
    key = np.where(cand_i < 0, np.iinfo(np.int64).max, cand_i)
    order = np.lexsort((key, -exact), axis=-1)
    exact = np.take_along_axis(exact, order, axis=1)
    cand_i = np.take_along_axis(cand_i, order, axis=1)
    scores = np.full((nq, k), -np.inf)
    indices = np.full((nq, k), -1, dtype=np.int64)
    kk = min(k, cand_i.shape[1])
    scores[:, :kk] = exact[:, :kk]
    indices[:, :kk] = cand_i[:, :kk]
    kth = scores[:, k - 1]
    # an unkept item could belong to the top-k when its best possible score reaches the k-th exact score
    fallback = np.flatnonzero(np.isfinite(unkept) & (unkept + bound >= kth))
    if len(fallback):
        logger.info("exhaustive re-search of %d of %d queries (candidate bound not conclusive)", len(fallback), nq)
        fs, fi = brute_force_topk(q[fallback], database, k, None if query_groups is None else query_groups[fallback])
        scores[fallback], indices[fallback] = fs, fi
    return TopK(scores=scores, indices=indices, n_fallback=len(fallback))


def _rescore(q: np.ndarray, database: Database, cand_i: np.ndarray) -> np.ndarray:
    """Exact float64 scores of the candidate pairs (``-inf`` where the index is -1), one pass over the database."""
    exact = np.full(cand_i.shape, -np.inf)
    if not (cand_i >= 0).any():
        return exact
    for block in database():
        inside = (cand_i >= block.start) & (cand_i < block.start + len(block.vectors))
        for i in np.flatnonzero(inside.any(axis=1)):
            cols = np.flatnonzero(inside[i])
            exact[i, cols] = exact_dot(block.vectors[cand_i[i, cols] - block.start], q[i])
    return exact


def brute_force_topk(
    queries: np.ndarray, database: Database, k: int, query_groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reference search: every pair scored with :func:`exact_dot`, ties to the lowest index.

    Returns:
        (scores n_q x k, indices n_q x k), ``-inf`` / ``-1`` where the database had fewer items.
    """
    q = np.asarray(queries, dtype=np.float32)
    all_s: list[np.ndarray] = []
    all_i: list[np.ndarray] = []
    for block in database():
        nb = len(block.vectors)
        s = np.empty((len(q), nb))
        for r in range(len(q)):
            s[r] = exact_dot(block.vectors, q[r])
        mask = _mask(block, query_groups)
        if mask is not None:
            s = np.where(mask, s, -np.inf)
        all_s.append(s)
        all_i.append(np.broadcast_to(block.start + np.arange(nb), s.shape))
    s = np.concatenate(all_s, 1) if all_s else np.empty((len(q), 0))
    i = np.concatenate(all_i, 1) if all_i else np.empty((len(q), 0), dtype=np.int64)
    order = np.lexsort((i, -s), axis=-1)
    s = np.take_along_axis(s, order, 1)[:, :k]
    i = np.take_along_axis(i, order, 1)[:, :k]
    i = np.where(np.isfinite(s), i, -1)
    out_s = np.full((len(q), k), -np.inf)
    out_i = np.full((len(q), k), -1, dtype=np.int64)
    out_s[:, : s.shape[1]] = s
    out_i[:, : i.shape[1]] = i
    return out_s, out_i
