from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from synthgate.audit.backend import Backend, error_bound
from synthgate.audit.search import DbBlock, best_first, brute_force_topk, exact_pair_scores, search_topk
from synthgate.errors import UsageError


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_db(db: np.ndarray, block: int, valid: np.ndarray | None = None, groups: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    def database() -> Iterator[DbBlock]:
        for s in range(0, len(db), block):
            yield DbBlock(
                s, db[s : s + block],
                None if valid is None else valid[s : s + block],
                None if groups is None else groups[s : s + block],
            )

    return database


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    db = unit(rng, 700, 96)
    db[300] = db[20]  # exact duplicates: ties must go to the lowest index
    db[650] = db[20]
    q = unit(rng, 40, 96)
    q[0] = db[20]
    q[1] = 0.6 * db[5] + 0.4 * db[6]
    return q, db


def gathered(db: np.ndarray, gather: bool):  # type: ignore[no-untyped-def]
    """Random access to the rows (exact scoring at the end of the pass), or None (exact scoring per block)."""
    return (lambda rows: db[rows]) if gather else None


@pytest.mark.parametrize("gather", [False, True])
@pytest.mark.parametrize("backend", list(Backend))
@pytest.mark.parametrize("block", [64, 700])
def test_backends_equal_brute_force(data: tuple[np.ndarray, np.ndarray], backend: Backend, block: int,
                                    gather: bool) -> None:
    q, db = data
    database = make_db(db, block)
    ref_s, ref_i = brute_force_topk(q, database, 6)
    top = search_topk(q, database, 6, backend, rows=gathered(db, gather))
    np.testing.assert_array_equal(top.indices, ref_i)
    np.testing.assert_array_equal(top.scores, ref_s)
    assert top.indices[0, :3].tolist() == [20, 300, 650]


@pytest.mark.parametrize("gather", [False, True])
@pytest.mark.parametrize("backend", list(Backend))
def test_groups_and_invalid_rows_are_never_returned(data: tuple[np.ndarray, np.ndarray], backend: Backend,
                                                    gather: bool) -> None:
    q, db = data
    groups = np.arange(len(db)) // 50
    valid = np.ones(len(db), bool)
    valid[300] = False
    qg = np.arange(len(q)) % 14
    qg[0] = 0  # query 0 = db[20], group 0: its copies 20 (group 0) excluded, 300 invalid, 650 allowed
    database = make_db(db, 128, valid, groups)
    _ref_s, ref_i = brute_force_topk(q, database, 5, qg)
    top = search_topk(q, database, 5, backend, query_groups=qg, rows=gathered(db, gather))
    np.testing.assert_array_equal(top.indices, ref_i)
    assert top.indices[0, 0] == 650
    assert not np.isin(top.indices, [300]).any()
    assert (groups[top.indices] != qg[:, None]).all()


@pytest.mark.parametrize("gather", [False, True])
@pytest.mark.parametrize("backend", list(Backend))
def test_fewer_items_than_k(backend: Backend, gather: bool) -> None:
    rng = np.random.default_rng(1)
    db = unit(rng, 3, 16)
    q = unit(rng, 2, 16)
    valid = np.array([True, False, True])
    top = search_topk(q, make_db(db, 2, valid), 4, backend, rows=gathered(db, gather))
    assert (top.indices[:, 2:] == -1).all() and np.isneginf(top.scores[:, 2:]).all()
    assert set(top.indices[0, :2].tolist()) == {0, 2}


@pytest.mark.parametrize("gather", [False, True])
def test_bf16_fallback_keeps_exactness(gather: bool) -> None:
    # near-duplicates closer than the bf16 error bound with no padding force the exhaustive fallback
    rng = np.random.default_rng(2)
    base = unit(rng, 1, 256)
    db = base + 1e-4 * rng.standard_normal((200, 256)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    q = base.repeat(3, 0)
    database = make_db(db, 50)
    _ref_s, ref_i = brute_force_topk(q, database, 5)
    top = search_topk(q, database, 5, Backend.BF16, pad=0, rows=gathered(db, gather))
    assert top.n_fallback == 3
    np.testing.assert_array_equal(top.indices, ref_i)
    # with mirrors, the fallback keeps them: entries 2 j (+1), and the mirrored query finds the mirrored rows
    mirrored = np.concatenate([q[:, :128], -q[:, 128:]], axis=1)
    top = search_topk(mirrored, database, 5, Backend.BF16, pad=0, rows=gathered(db, gather), mirror_at=128)
    assert top.n_fallback == 3
    np.testing.assert_array_equal(top.indices, 2 * ref_i + 1)


def test_error_bound_holds_for_bf16_and_fp32() -> None:
    rng = np.random.default_rng(3)
    d = 512
    q, db = unit(rng, 30, d), unit(rng, 200, d)
    exact = np.stack([exact_pair_scores(db, np.broadcast_to(x, db.shape)) for x in q])
    qb = torch.from_numpy(q).bfloat16()
    approx = (qb @ torch.from_numpy(db).bfloat16().T).float().numpy()
    q_err = np.linalg.norm(q.astype(np.float64) - qb.float().numpy(), axis=1)
    db_err = float(np.linalg.norm(db.astype(np.float64) - torch.from_numpy(db).bfloat16().float().numpy(), axis=1).max())
    b = error_bound(Backend.BF16, d, np.linalg.norm(q, axis=1), 1.0 + 1e-6, q_err, db_err)
    gap = np.abs(approx - exact)
    assert (gap <= b[:, None]).all()
    assert gap.max() > 1e-4  # bf16 really is approximate: the bound is doing work
    b32 = error_bound(Backend.FAISS, d, np.linalg.norm(q, axis=1), 1.0 + 1e-6)
    assert (np.abs(q @ db.T - exact) <= b32[:, None]).all()


def test_chunked_fp32_bound_holds_and_is_tight_at_large_d() -> None:
    from synthgate.audit.backend import CHUNK, chunked_scores

    rng = np.random.default_rng(5)
    d = 8 * CHUNK
    q, db = unit(rng, 8, d), unit(rng, 64, d)
    db[1:] = db[0] + 0.05 * db[1:]  # correlated rows: large partial sums, like images
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    exact = np.stack([exact_pair_scores(db, np.broadcast_to(x, db.shape)) for x in q])
    approx = chunked_scores(torch.from_numpy(q), torch.from_numpy(db)).numpy()
    b = error_bound(Backend.TORCH, d, np.linalg.norm(q, axis=1) * (1 + 1e-6), 1.0 + 1e-6)
    assert (np.abs(approx - exact) <= b[:, None]).all()
    # chunking makes the bound ~d / (CHUNK + d / CHUNK) times tighter than the whole-row one
    whole = error_bound(Backend.FAISS, d, np.ones(1), 1.0)
    assert b[0] < whole[0] / 7


@pytest.mark.parametrize("gather", [False, True])
@pytest.mark.parametrize("backend", list(Backend))
def test_smooth_correlated_data_needs_no_fallback(backend: Backend, gather: bool) -> None:
    """Neighbour scores of smooth images are dense; the fp32 bounds must still settle the queries."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(6)
    n, side = 300, 48
    imgs = ndi.gaussian_filter(rng.standard_normal((n + 20, side, side)), (0, 3, 3))
    imgs += 3 * ndi.gaussian_filter(rng.standard_normal((1, side, side)), 8)  # shared anatomy-like envelope
    x = imgs.reshape(len(imgs), -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    db, q = x[:n], x[n:]
    database = make_db(db, 64)
    ref_s, ref_i = brute_force_topk(q, database, 5)
    top = search_topk(q, database, 5, backend, rows=gathered(db, gather))
    np.testing.assert_array_equal(top.indices, ref_i)
    np.testing.assert_array_equal(top.scores, ref_s)
    if gather:  # the pool is scored once, at the end: about k pairs per query, not every record of the pass
        assert top.n_exact <= 2 * 5 * len(q) + top.n_fallback * len(db)
    if backend is not Backend.BF16:
        assert top.n_fallback == 0


def test_bad_arguments() -> None:
    rng = np.random.default_rng(4)
    db = unit(rng, 5, 8)
    with pytest.raises(UsageError, match="k must be"):
        search_topk(db, make_db(db, 5), 0)
    with pytest.raises(UsageError, match="backend"):
        search_topk(db, make_db(db, 5), 2, "gpu-magic")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("backend", [Backend.TORCH, Backend.BF16, Backend.FAISS])
def test_cuda_backends_equal_brute_force(data: tuple[np.ndarray, np.ndarray], backend: Backend) -> None:
    q, db = data
    database = make_db(db, 128)
    ref_s, ref_i = brute_force_topk(q, database, 6)
    top = search_topk(q, database, 6, backend, device="cuda", rows=lambda r: torch.from_numpy(db[r]).cuda())  # faiss-cpu on cuda -> torch matmul
    np.testing.assert_array_equal(top.indices, ref_i)
    np.testing.assert_array_equal(top.scores, ref_s)
    # with mirrors (the two half-width products on the device), against the same search on the CPU
    cpu = search_topk(q, database, 6, Backend.TORCH, mirror_at=48)
    gpu = search_topk(q, database, 6, backend, device="cuda", rows=lambda r: torch.from_numpy(db[r]).cuda(),
                      mirror_at=48)
    np.testing.assert_array_equal(gpu.indices, cpu.indices)
    np.testing.assert_array_equal(gpu.scores, cpu.scores)


def _smooth_images(n: int, c: int, h: int, w: int, seed: int) -> np.ndarray:
    """n x (c h w) unit, centred vectors of smooth images with a shared envelope (dense neighbour scores)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    imgs = ndi.gaussian_filter(rng.standard_normal((n, c, h, w)), (0, 0, 2, 2))
    imgs += 2 * ndi.gaussian_filter(rng.standard_normal((1, c, h, w)), (0, 0, 6, 6))
    x = imgs.reshape(n, -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("gather", [False, True])
@pytest.mark.parametrize("backend", list(Backend))
@pytest.mark.parametrize("width", [16, 15])
def test_mirror_search_equals_brute_force_over_rows_and_their_mirrors(backend: Backend, gather: bool,
                                                                         width: int) -> None:
    from synthgate.audit.basis import mirror_in_basis, sym_columns, to_mirror_basis

    shape = (2, 12, width)
    x = _smooth_images(230, *shape, seed=7)
    x[5] = x[40]  # a tie
    x[200] = x[0].reshape(shape)[..., ::-1].reshape(-1)  # query 200 is training image 0 mirrored
    db, q = to_mirror_basis(x[:180], shape).numpy(), to_mirror_basis(x[180:], shape).numpy()
    s = sym_columns(shape)
    groups, qg = np.arange(len(db)) // 10, np.arange(len(q)) % 7 + 5
    database = make_db(db, 64, groups=groups)
    # reference: every row and every mirrored row scored exactly; entry 2 j (+1 mirrored), ties to the lower entry
    plain_s, plain_i = brute_force_topk(q, database, 4, qg)
    mirr_s, mirr_i = brute_force_topk(mirror_in_basis(q, s), database, 4, qg)
    ref_s = np.concatenate([plain_s, mirr_s], axis=1)
    ref_i = np.concatenate([2 * plain_i, 2 * mirr_i + 1], axis=1)
    order = best_first(ref_s, ref_i)[:, :4]
    ref_s, ref_i = np.take_along_axis(ref_s, order, 1), np.take_along_axis(ref_i, order, 1)
    top = search_topk(q, database, 4, backend, query_groups=qg, rows=gathered(db, gather), mirror_at=s)
    np.testing.assert_array_equal(top.indices, ref_i)
    np.testing.assert_array_equal(top.scores, ref_s)
    assert top.indices[20, 0] == 1 and top.scores[20, 0] == pytest.approx(1.0, abs=1e-6)  # image 0, mirrored
    assert (top.indices[:, 0] % 2 == 1).any() and (top.indices[:, 0] % 2 == 0).any()
    if backend is not Backend.BF16:
        assert top.n_fallback == 0


def test_half_products_bound_holds_at_large_d() -> None:
    """sym +- anti from two chunked half-width GEMMs stays within the bound with ``halves``."""
    from synthgate.audit.backend import CHUNK, chunked_scores

    rng = np.random.default_rng(8)
    d, m = 8 * CHUNK, 4 * CHUNK
    q, db = unit(rng, 8, d), unit(rng, 64, d)
    db[1:] = db[0] + 0.05 * db[1:]
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    tq, tb = torch.from_numpy(q), torch.from_numpy(db)
    sym, anti = chunked_scores(tq[:, :m], tb[:, :m]).numpy(), chunked_scores(tq[:, m:], tb[:, m:]).numpy()
    mirrored = np.concatenate([q[:, :m], -q[:, m:]], axis=1)
    b = error_bound(Backend.TORCH, d, np.linalg.norm(q, axis=1) * (1 + 1e-6), 1.0 + 1e-6, halves=True)
    for approx, qs in ((sym + anti, q), (sym - anti, mirrored)):
        exact = np.stack([exact_pair_scores(db, np.broadcast_to(x, db.shape)) for x in qs])
        assert (np.abs(approx - exact) <= b[:, None]).all()
