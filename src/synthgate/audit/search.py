"""Exact top-k inner-product search over a database streamed in blocks, at GEMM speed.

One pass over the database. For each block:

1. **approximate scores** of every query against every row of the block: a GEMM of one of the backends of
   :mod:`synthgate.audit.backend` (torch fp32 in column chunks, faiss, or bf16), with a proven error bound;
2. the ``P = k + pad`` best approximate scores per query are kept, with their rows;
3. **exact scores**, in float64 (:func:`exact_pair_scores`), of the kept pairs that can still reach the top-k:
   those within ``2 B`` of the k-th best approximate score, where ``B`` is a proven bound on the approximate
   score's error (:func:`~synthgate.audit.backend.error_bound`). With random access to the rows (the audit's
   feature cache) each query pools its ``P`` best pairs over the whole pass and only the survivors are scored,
   gathered by row, at the end: about ``k`` pairs per query. Without it they are scored while their block is in
   memory (every running record of the pass), so the database is still read once.

With ``mirror_at`` (queries and database in the mirror basis, :mod:`synthgate.audit.basis`) the database holds
every row and its left-right mirror, as entries ``2 j`` and ``2 j + 1``, both scored by the same two half-width
GEMMs (``sym + anti`` and ``sym - anti``); a query keeps its top-k over all entries.

Every pair that is not scored exactly has an approximate score of at most ``U`` (tracked per query), so its exact
score is at most ``U + B``. When that is below the k-th exact score the exact top-k is proven. A query the
bound cannot settle (dense scores, or the loose bound of bf16) is searched again with every row considered
(no ``P`` cap) in one blocked pass with the tight fp32 bound; no query is ever scored one by one.

Results are identical across backends and equal to :func:`brute_force_topk`, ties to the lowest index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthgate.audit.backend import Backend, chunked_scores, error_bound, norm_upper, resolve_backend
from synthgate.audit.basis import mirror_in_basis
from synthgate.errors import UsageError

logger = logging.getLogger(__name__)

#: Pairs scored exactly per call: work arrays stay below glibc's mmap threshold (32 MiB), so they are reused
#: instead of mapped and page-faulted afresh each time.
PAIR_BATCH = 64


@dataclass(frozen=True)
class DbBlock:
    """One block of the database: rows ``start .. start + len(vectors)``.

    ``vectors`` is an n_b x d float32 numpy array or torch tensor (on the search device, or CPU).
    """

    start: int
    vectors: Any
    valid: np.ndarray | None = None  # n_b bools; invalid rows are never returned
    groups: np.ndarray | None = None  # n_b ints; rows of a query's own group are never returned
    norms: np.ndarray | None = None  # n_b upper bounds on the row norms (:func:`norm_upper`), when known


#: A callable returning a fresh iterator over the database blocks.
Database = Callable[[], Iterator[DbBlock]]
#: Random access to database rows: global indices -> their vectors (float32 numpy or torch, in that order).
RowReader = Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class TopK:
    """Exact top-k of each query.

    Attributes:
        scores: n_q x k float64 exact scores, descending; ``-inf`` where the database had fewer items.
        indices: n_q x k int64 database indices; ``-1`` where the database had fewer items.
        n_fallback: queries the candidate bound could not settle, searched again with every row considered.
        n_exact: pairs scored exactly (float64).
    """

    scores: np.ndarray
    indices: np.ndarray
    n_fallback: int
    n_exact: int = 0


def exact_pair_scores(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Inner products of matching rows of two n x d float32 arrays, products and sums in float64.

    The exact score of the search: fp32 products are exact in float64, and the value of a pair does not depend
    on the other pairs scored with it, so equal rows give equal scores and ties resolve reproducibly.
    """
    return np.einsum("ij,ij->i", rows, queries, dtype=np.float64)


@dataclass
class _Running:
    """Per-query state of a search (numpy, n_q rows)."""

    exact_s: np.ndarray  # n_q x k float64, descending
    exact_i: np.ndarray  # n_q x k int64
    approx_k: np.ndarray  # n_q x k float64: best approximate scores seen (descending)
    unkept: np.ndarray  # n_q float64: largest approximate score of a pair not scored exactly
    pool_s: np.ndarray  # n_q x P float64: best approximate scores, when exact scoring waits for the pass's end
    pool_i: np.ndarray  # n_q x P int64: their database indices (-1: none)
    n_exact: int = 0

    @classmethod
    def empty(cls, nq: int, k: int, pool: int = 0) -> _Running:
        return cls(np.full((nq, k), -np.inf), np.full((nq, k), -1, np.int64), np.full((nq, k), -np.inf),
                   np.full(nq, -np.inf), np.full((nq, pool), -np.inf), np.full((nq, pool), -1, np.int64))


def best_first(scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The order (along the last axis) that ranks pairs as every result of the search does: score descending,
    ties to the lowest index, ``-1`` (no item) last."""
    key = np.where(indices < 0, np.iinfo(np.int64).max, indices)
    return np.lexsort((key, -scores), axis=-1)


def _merge_exact(run: _Running, qi: np.ndarray, s: np.ndarray, gi: np.ndarray) -> None:
    """Merge exact pairs (query row, score, index) into the running exact top-k (ties to the lowest index)."""
    k = run.exact_s.shape[1]
    order = np.lexsort((gi, qi))
    qi, s, gi = qi[order], s[order], gi[order]
    for q in np.unique(qi):
        sel = slice(np.searchsorted(qi, q, "left"), np.searchsorted(qi, q, "right"))
        cs = np.concatenate([run.exact_s[q], s[sel]])
        ci = np.concatenate([run.exact_i[q], gi[sel]])
        o = best_first(cs, ci)[:k]
        run.exact_s[q], run.exact_i[q] = cs[o], ci[o]


class _Searcher:
    """One search: queries, settings and the running state."""

    def __init__(self, queries: np.ndarray, k: int, backend: Backend, device: str, pad: int | None,
                 query_groups: np.ndarray | None, rows: RowReader | None = None,
                 mirror_at: int | None = None) -> None:
        import torch

        self.q = np.ascontiguousarray(queries, dtype=np.float32)
        self.k, self.backend, self.device = k, backend, device
        self.mirror_at = mirror_at
        self.per_row = 2 if mirror_at is not None else 1  # database entries per row: the row, and its mirror
        self.p = None if pad is None else k + pad  # None: every row of a block is a candidate
        # with random access to the rows, exact scoring waits for the end of the pass (see finish())
        self.rows = rows if self.p is not None else None
        self.groups = query_groups
        self.tq = torch.from_numpy(self.q).to(device)
        self.q_norm = norm_upper(self.q)  # a mirror has the same norm
        self.q_round_err = None
        if backend is Backend.BF16:
            self.tq = self.tq.to(torch.bfloat16)
            self.q_round_err = norm_upper(self.q - self.tq.float().cpu().numpy())
        if backend is Backend.FAISS and mirror_at is not None:  # faiss takes contiguous arrays
            self.q_parts = (np.ascontiguousarray(self.q[:, :mirror_at]), np.ascontiguousarray(self.q[:, mirror_at:]))
        self.run = _Running.empty(len(self.q), k, self.p if self.rows is not None and self.p is not None else 0)
        self.db_norm_max = 0.0
        self.db_round_err_max = 0.0

    def pair_vectors(self, qi: np.ndarray, entries: np.ndarray, rows: Callable[[np.ndarray], Any]
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(database vectors, query vectors) of the pairs (query ``qi``, database entry): an entry's row from
        ``rows``, and the query, mirrored (``anti`` negated, exact) where the entry is a row's mirror, which has
        the same products as mirroring the row."""
        got = _as_float32(rows(entries // self.per_row))
        q = self.q[qi]
        mirrored = entries % self.per_row == 1
        if mirrored.any():
            assert self.mirror_at is not None
            q[mirrored] = mirror_in_basis(q[mirrored], self.mirror_at)
        return got, q

    def scores(self, block: DbBlock) -> Any:
        """n_q x (entries of the block) approximate scores (torch float32 on the device), masked pairs at -inf;
        with mirrors, column ``2 c + 1`` is row ``c`` mirrored."""
        import torch

        b = block.vectors
        b = b if isinstance(b, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
        b = b.to(self.device)
        norms = block.norms if block.norms is not None else norm_upper(b)
        self.db_norm_max = max(self.db_norm_max, float(norms.max()))
        if self.backend is Backend.BF16:
            bb = b.to(torch.bfloat16)
            self.db_round_err_max = max(self.db_round_err_max, float(norm_upper(b - bb.float()).max()))
            b = bb
        m = self.mirror_at
        if m is None:
            st = self._products(self.tq, b, self.q)
        else:
            sym = self._products(self.tq[:, :m], b[:, :m], self.q_parts[0] if self.backend is Backend.FAISS else None)
            anti = self._products(self.tq[:, m:], b[:, m:], self.q_parts[1] if self.backend is Backend.FAISS else None)
            both = torch.empty((*sym.shape, 2), dtype=torch.float32, device=sym.device)
            torch.add(sym, anti, out=both[..., 0])
            torch.sub(sym, anti, out=both[..., 1])
            st = both.view(sym.shape[0], -1)
        mask = _allowed(block, self.groups, st.device)
        if mask is not None:
            st.masked_fill_(~mask.repeat_interleave(self.per_row, dim=1), -torch.inf)
        return st

    def _products(self, tq: Any, b: Any, q_faiss: np.ndarray | None) -> Any:
        """Approximate ``tq @ b.T`` (torch float32) by the search's backend."""
        import torch

        if self.backend is Backend.BF16:
            return (tq @ b.T).float()
        if self.backend is Backend.FAISS:
            import faiss

            assert q_faiss is not None
            # all scores of the block through faiss's inner-product kernel (the one IndexFlatIP uses)
            return torch.from_numpy(faiss.pairwise_distances(q_faiss, np.ascontiguousarray(b.cpu().numpy()),
                                                             faiss.METRIC_INNER_PRODUCT))
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # the bound assumes true fp32 products
        try:
            return chunked_scores(tq, b)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32

    def bound(self) -> np.ndarray:
        return error_bound(self.backend, self.q.shape[1], self.q_norm, self.db_norm_max, self.q_round_err,
                           self.db_round_err_max, halves=self.mirror_at is not None)

    def add_block(self, block: DbBlock) -> None:
        import torch

        nb = len(block.vectors) * self.per_row  # entries of the block
        if nb == 0:
            return
        first = block.start * self.per_row
        st = self.scores(block)
        run, k = self.run, self.k
        if self.p is None or nb <= self.p:
            vals, idx = torch.sort(st, dim=1, descending=True)
        else:
            # the (P+1)-th best approximate score bounds every row of the block that is not a candidate
            vals, idx = torch.topk(st, self.p + 1, dim=1)
            run.unkept = np.maximum(run.unkept, vals[:, self.p].double().cpu().numpy())
            vals, idx = vals[:, : self.p], idx[:, : self.p]
        v = vals.double().cpu().numpy()
        ix = idx.cpu().numpy().astype(np.int64)
        if self.rows is not None:
            self._pool(v, first + ix)
            return
        both = np.concatenate([run.approx_k, v[:, :k]], axis=1)
        run.approx_k = -np.sort(-both, axis=1)[:, :k]
        qi, col = np.nonzero(self._can_reach_topk(v, run.approx_k[:, k - 1]))
        if len(qi):
            self._score_exact(block, qi, ix[qi, col])

    def _can_reach_topk(self, v: np.ndarray, kth_approx: np.ndarray) -> np.ndarray:
        """Which approximate scores ``v`` (n_q x m) are within ``2 B`` of each query's k-th best approximate score,
        so that their exact score could still reach the top-k; the largest of the others is recorded as unkept."""
        floor = kth_approx - 2.0 * self.bound()
        finite = np.isfinite(v)
        take = finite & (v >= floor[:, None])
        below = finite & ~take
        if below.any():
            self.run.unkept = np.maximum(self.run.unkept, np.where(below, v, -np.inf).max(axis=1))
        return take

    def _pool(self, v: np.ndarray, gi: np.ndarray) -> None:
        """Merge a block's best approximate pairs into the pool of ``P`` per query; what falls out is unkept."""
        run, p = self.run, self.p
        assert p is not None
        cs = np.concatenate([run.pool_s, v], axis=1)
        ci = np.concatenate([run.pool_i, gi], axis=1)
        order = best_first(cs, ci)
        cs, ci = np.take_along_axis(cs, order, 1), np.take_along_axis(ci, order, 1)
        run.pool_s, run.pool_i = cs[:, :p], ci[:, :p]
        if cs.shape[1] > p:
            run.unkept = np.maximum(run.unkept, cs[:, p])

    def finish(self) -> None:
        """After the pass, with a pool: score exactly the pooled pairs that can still reach the top-k (those
        within ``2 B`` of the k-th best approximate score), their rows gathered from the database."""
        if self.rows is None:
            return
        run = self.run
        qi, col = np.nonzero(self._can_reach_topk(run.pool_s, run.pool_s[:, self.k - 1]))
        gi = run.pool_i[qi, col]
        order = np.argsort(gi, kind="stable")  # ascending rows: a file-backed database reads forward
        qi, gi = qi[order], gi[order]
        scores = np.empty(len(qi))
        for a in range(0, len(qi), PAIR_BATCH):
            sl = slice(a, a + PAIR_BATCH)
            scores[sl] = exact_pair_scores(*self.pair_vectors(qi[sl], gi[sl], self.rows))
        run.n_exact += len(qi)
        _merge_exact(run, qi, scores, gi)

    def _score_exact(self, block: DbBlock, qi: np.ndarray, entries: np.ndarray) -> None:
        """Score pairs exactly while their block is in memory (``entries`` numbered within the block)."""
        import torch

        vec = block.vectors

        def rows(r: np.ndarray) -> Any:
            return vec[torch.from_numpy(r).to(vec.device)] if isinstance(vec, torch.Tensor) else vec[r]

        scores = np.empty(len(qi))
        for a in range(0, len(qi), PAIR_BATCH):
            sl = slice(a, a + PAIR_BATCH)
            scores[sl] = exact_pair_scores(*self.pair_vectors(qi[sl], entries[sl], rows))
        self.run.n_exact += len(qi)
        _merge_exact(self.run, qi, scores, block.start * self.per_row + entries)

    def unsettled(self) -> np.ndarray:
        """Queries whose top-k is not proven: a pair not scored exactly could still reach the k-th score."""
        run = self.run
        kth = run.exact_s[:, self.k - 1]
        return np.flatnonzero(np.isfinite(run.unkept) & (run.unkept + self.bound() >= kth))


def _as_float32(x: Any) -> np.ndarray:
    """Rows as a float32 numpy array (from a torch tensor on any device, or numpy)."""
    import torch

    return x.float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)


def _allowed(block: DbBlock, query_groups: np.ndarray | None, device: Any) -> Any:
    """n_q x n_b (or 1 x n_b) bool tensor of the pairs that may be returned, or None when all may."""
    import torch

    m: Any = None
    if block.valid is not None and not block.valid.all():
        m = torch.from_numpy(np.asarray(block.valid, dtype=bool))[None, :].to(device)
    if query_groups is not None and block.groups is not None:
        g = torch.from_numpy(query_groups)[:, None].to(device) != torch.from_numpy(block.groups)[None, :].to(device)
        m = g if m is None else (g & m)
    return m


def search_topk(
    queries: np.ndarray,
    database: Database,
    k: int,
    backend: Backend | str = Backend.TORCH,
    device: str = "cpu",
    pad: int | None = None,
    query_groups: np.ndarray | None = None,
    rows: RowReader | None = None,
    mirror_at: int | None = None,
) -> TopK:
    """Exact top-``k`` inner-product neighbours of each query over a streamed database.

    Args:
        queries: n_q x d float32 vectors.
        database: callable returning a fresh iterator of :class:`DbBlock` (read once; once more for the
            queries the bound does not settle).
        k: neighbours per query.
        backend: candidate-search backend (:class:`Backend`); the result does not depend on it.
        device: torch device (``"cpu"`` or ``"cuda"``); faiss runs on CPU.
        pad: extra candidates kept per query and block (default 16 for fp32, 64 for bf16).
        query_groups: n_q ints; a query never gets a database row of the same group (``DbBlock.groups``).
        rows: random access to the database's rows (e.g. :meth:`FeatureCache.rows`). With it, the pass keeps
            each query's ``P`` best approximate pairs and scores exactly, at its end, only those that can still
            reach the top-k, gathered by row: about ``k`` pairs per query instead of every running record of
            the pass.
        mirror_at: queries and database are in the mirror basis (:mod:`synthgate.audit.basis`) with this many
            symmetric columns first: the database holds every row ``j`` as entry ``2 j`` and its left-right
            mirror as entry ``2 j + 1``, and the results are entries (ties to the lower, unmirrored one).

    Returns:
        :class:`TopK`, ties broken to the lowest database index (entry, with ``mirror_at``).

    Raises:
        UsageError: ``k < 1`` or an unknown backend.
    """
    if k < 1:
        raise UsageError(f"k must be >= 1, got {k}")
    be = resolve_backend(backend, device)
    pad = pad if pad is not None else (64 if be is Backend.BF16 else 16)
    s = _Searcher(queries, k, be, device, pad, query_groups, rows, mirror_at)
    for block in database():
        s.add_block(block)
    s.finish()
    scores, indices = s.run.exact_s, s.run.exact_i
    n_exact = s.run.n_exact
    redo = s.unsettled()
    if len(redo):
        logger.info("%d of %d queries searched again with every row considered (bound not conclusive)",
                    len(redo), len(s.q))
        again = _Searcher(s.q[redo], k, Backend.TORCH, device, None,
                          None if query_groups is None else query_groups[redo], mirror_at=mirror_at)
        for block in database():
            again.add_block(block)
        assert len(again.unsettled()) == 0, "an uncapped search always settles"
        scores[redo], indices[redo] = again.run.exact_s, again.run.exact_i
        n_exact += again.run.n_exact
    scores = np.where(indices >= 0, scores, -np.inf)
    return TopK(scores=scores, indices=indices, n_fallback=len(redo), n_exact=n_exact)


def brute_force_topk(
    queries: np.ndarray, database: Database, k: int, query_groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reference search: every pair scored with :func:`exact_pair_scores`, ties to the lowest index.

    Returns:
        (scores n_q x k, indices n_q x k), ``-inf`` / ``-1`` where the database had fewer items.
    """
    q = np.asarray(queries, dtype=np.float32)
    all_s: list[np.ndarray] = []
    all_i: list[np.ndarray] = []
    for block in database():
        vec = _as_float32(block.vectors)
        nb = len(vec)
        s = np.empty((len(q), nb))
        for r in range(len(q)):
            s[r] = exact_pair_scores(vec, np.broadcast_to(q[r], vec.shape))
        mask = _allowed(block, query_groups, "cpu")
        if mask is not None:
            s = np.where(mask.numpy(), s, -np.inf)
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
