from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from synthgate.audit.basis import to_mirror_basis
from synthgate.audit.features import pearson_features
from synthgate.audit.index import IndexSettings, build_feature_cache
from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit
from synthgate.audit.planted import CopyKind, plant_copies
from synthgate.data.store import read_store, write_store

from .conftest import blob_images, make_set


def _cache(tmp_path, budget: int):  # type: ignore[no-untyped-def]
    s = make_set(blob_images(30, seed=21), "tr")
    groups = np.arange(30) // 4
    return s, build_feature_cache(s, (0, 1), groups, IndexSettings(7, budget, cache_dir=tmp_path))


def test_file_cache_equals_memory_cache_and_leaves_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s, mem = _cache(tmp_path, 1 << 30)
    _, disk = _cache(tmp_path, 1)
    assert (mem.where, disk.where) == ("memory", "file")
    assert os.listdir(tmp_path) == []  # the temporary file is unlinked as soon as it is opened
    ref = pearson_features(s.images, (0, 1), 2).vectors
    stored = to_mirror_basis(ref, mem.shape).numpy()
    with mem, disk:
        for a, b in zip(mem.blocks(), disk.blocks(), strict=True):
            assert a.start == b.start
            np.testing.assert_array_equal(a.vectors.numpy(), b.vectors.numpy())
            np.testing.assert_array_equal(a.vectors.numpy(), stored[a.start : a.start + len(a.vectors)])
        held = list(disk.blocks())  # a block still held after the next is taken (its pages dropped) reads back
        np.testing.assert_array_equal(np.concatenate([b.vectors.numpy() for b in held]), stored)
        rows = np.array([29, 3, 3, 0])
        np.testing.assert_array_equal(disk.stored_rows(rows).numpy(), stored[rows])
        np.testing.assert_array_equal(mem.rows(rows).numpy(), disk.rows(rows).numpy())
        np.testing.assert_allclose(mem.rows(rows).numpy(), ref[rows], rtol=0, atol=1e-7)  # image order again
    assert disk._fd is None
    s2 = s.row_range(0, 9)
    plain = build_feature_cache(s2, (0, 1), np.zeros(9, np.int64), IndexSettings(4, 1 << 30, descriptors=False))
    assert plain.descriptors.shape == (9, 0) and mem.descriptors.shape[0] == 30 and mem.descriptors.shape[1] > 0
    plain.close()


def test_file_cache_blocks_whose_rows_straddle_pages_read_back_whole(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = make_set(blob_images(11, size=30, seed=5), "tr")  # a row is 7,200 bytes: blocks share pages
    with build_feature_cache(s, (0, 1), np.arange(11), IndexSettings(3, 1, cache_dir=tmp_path)) as disk:
        assert disk.where == "file"
        stored = to_mirror_basis(pearson_features(s.images, (0, 1), 2).vectors, disk.shape).numpy()
        for _ in range(2):  # each block's pages (and a neighbour's shared page) are dropped as the next is taken
            np.testing.assert_array_equal(np.concatenate([b.vectors.numpy().copy() for b in disk.blocks()]), stored)


def test_failed_cache_write_raises_and_leaves_no_thread_or_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno
    import threading

    from synthgate.audit import index

    calls: list[int] = []
    real = index._pwrite_all

    def full_disk(fd: int, arr: np.ndarray, offset: int) -> None:
        calls.append(offset)
        if len(calls) == 2:  # the second block's background write finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, arr, offset)

    monkeypatch.setattr(index, "_pwrite_all", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _cache(tmp_path, 1)
    assert len(calls) == 2  # no block was written after the failure was seen
    assert not [t for t in threading.enumerate() if t.name.startswith("synthgate-cache-write")]
    assert os.listdir(tmp_path) == []


def test_audit_reads_the_training_store_once_and_equals_the_in_memory_run(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    train = make_set(blob_images(40, seed=22), "tr")
    store = read_store(write_store(train, tmp_path / "train"))
    copies, _ = plant_copies(train, 2, kinds=[CopyKind.IDENTITY, CopyKind.SHIFT, CopyKind.ROTATE], seed=2)
    holdout = make_set(blob_images(12, seed=23), "ho")
    reads: list[int] = []
    orig = type(store).iter_blocks

    def counting(self, block_size):  # type: ignore[no-untyped-def]
        if self is store:
            reads.append(block_size)
        return orig(self, block_size)

    monkeypatch.setattr(type(store), "iter_blocks", counting)
    monkeypatch.setattr(type(store), "read_rows", lambda *a: (_ for _ in ()).throw(AssertionError("row read")))
    small = run_memorization_audit(store, copies, holdout, MemorizationConfig(max_memory=16 << 20,
                                                                              cache_dir=str(tmp_path)))
    assert len(reads) == 1  # one pass over the training store; every later step reads the feature cache
    big = run_memorization_audit(train, copies, holdout, MemorizationConfig())
    assert big.settings["feature_cache"] == "memory"
    for name in ("score", "train_row", "flip", "angle_deg", "shift_y", "shift_x", "topk_rows"):
        np.testing.assert_array_equal(getattr(small.synthetic, name), getattr(big.synthetic, name))
    assert small.flagged.all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("backend", ["torch", "bf16"])
def test_cuda_audit_equals_cpu(backend: str) -> None:
    train = make_set(blob_images(40, seed=22), "tr")
    copies, rows = plant_copies(train, 2, kinds=[CopyKind.IDENTITY, CopyKind.SHIFT, CopyKind.ROTATE], seed=2)
    holdout = make_set(blob_images(12, seed=23), "ho")
    cpu = run_memorization_audit(train, copies, holdout, MemorizationConfig())
    gpu = run_memorization_audit(train, copies, holdout, MemorizationConfig(device="cuda", backend=backend))
    assert gpu.settings["feature_cache"] == "memory"
    np.testing.assert_array_equal(gpu.synthetic.topk_rows, cpu.synthetic.topk_rows)  # the exact search
    np.testing.assert_array_equal(gpu.synthetic.topk_scores, cpu.synthetic.topk_scores)
    np.testing.assert_array_equal(gpu.synthetic.train_row, rows)
    assert gpu.flagged.all()


def test_query_blocks_are_balanced() -> None:
    from synthgate.audit.match import balanced_block

    assert balanced_block(1000, 491) == 334  # 3 passes of 334, not 491 + 491 + 18
    assert balanced_block(500, 491) == 250
    assert balanced_block(10, 491) == 10 and balanced_block(0, 5) == 1
    for n in range(1, 60):
        for b in range(1, 20):
            size = balanced_block(n, b)
            assert size <= b and -(-n // size) == -(-n // b)  # never more passes than the plan allows
