"""Read-ahead batches: the same batches as reading each step directly, from any start step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthgate.data.store import read_store, write_store
from synthgate.generators.batches import BatchPrefetcher, step_rows
from synthgate.generators.runs import DataSpec
from tests.sets import make_set


def _spec(s) -> DataSpec:  # type: ignore[no-untyped-def]
    _, h, w = s.shape
    return DataSpec(
        channels=s.channels, label_channel=s.label_channel, label_map=s.label_map, height=h, width=w, source={}
    )


def test_prefetched_batches_equal_direct_reads_from_any_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = read_store(write_store(make_set(n=10, size=8), tmp_path / "s"))  # memory-mapped: file reads
    chosen = np.array([0, 2, 3, 5, 7, 9])
    codec = _spec(store).codec
    direct = [
        torch.from_numpy(codec.encode(store.read_rows(chosen[step_rows(7, s, len(chosen), 4)]))) for s in range(11)
    ]
    with BatchPrefetcher(store, chosen, codec, 4, seed=7, start=0, device="cpu", block=3) as b:
        got = [b.next() for _ in range(11)]
    for s in range(11):
        assert torch.equal(got[s], direct[s]), s
    with BatchPrefetcher(store, chosen, codec, 4, seed=7, start=5, device="cpu", block=4) as b:
        assert torch.equal(b.next(), direct[5]) and torch.equal(b.next(), direct[6])
    assert not torch.equal(direct[0], direct[1])  # steps draw different batches
    assert step_rows(7, 3, 6, 4).tolist() == step_rows(7, 3, 6, 4).tolist()
    assert step_rows(7, 3, 6, 4).tolist() != step_rows(8, 3, 6, 4).tolist()


def test_a_read_error_reaches_the_training_thread() -> None:
    s = make_set(n=4, size=8)

    class Broken:
        def encode(self, images: np.ndarray) -> np.ndarray:
            raise OSError("disk gone")

    broken = BatchPrefetcher(s, np.arange(4), Broken(), 2, seed=0, start=0, device="cpu")  # type: ignore[arg-type]
    with broken as b, pytest.raises(OSError, match="disk gone"):
        b.next()
