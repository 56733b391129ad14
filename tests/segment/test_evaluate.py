"""Dice per subject: hand-computed values, and the streaming accumulator against restacked volumes."""

from __future__ import annotations

import numpy as np
import pytest

from synthgate.data.labels import REGIONS
from synthgate.errors import InputError
from synthgate.segment.evaluate import (
    DiceAccumulator,
    check_slice_order,
    dice_from_counts,
    stack_volumes,
    volume_dice,
)


def test_volume_dice_hand_computed() -> None:
    pred = np.zeros((2, 4, 4), dtype=bool)
    true = np.zeros((2, 4, 4), dtype=bool)
    pred[0, :2, :2] = True  # 4 voxels
    true[0, :2, :] = True  # 8 voxels, 4 shared with pred
    true[1, 0, 0] = True  # 1 more voxel
    assert volume_dice(pred, true) == pytest.approx(2 * 4 / (4 + 9))


def test_dice_empty_conventions() -> None:
    empty = np.zeros((3, 3), dtype=bool)
    one = empty.copy()
    one[1, 1] = True
    assert volume_dice(empty, empty) == 1.0
    assert volume_dice(one, empty) == 0.0
    assert volume_dice(empty, one) == 0.0
    assert volume_dice(one, one) == 1.0
    np.testing.assert_allclose(dice_from_counts([0, 1, 0], [0, 3, 2], [0, 1, 0]), [1.0, 0.5, 0.0])


def test_volume_dice_shape_mismatch() -> None:
    with pytest.raises(InputError, match="shape"):
        volume_dice(np.zeros((2, 2)), np.zeros((2, 3)))


def test_stack_volumes_orders_slices() -> None:
    masks = np.arange(4 * 3 * 2 * 2).reshape(4, 3, 2, 2)
    vols = stack_volumes(masks, ["a", "b", "a", "a"], np.array([5, 0, 1, 3]))
    assert list(vols) == ["a", "b"]
    assert vols["a"].shape == (3, 3, 2, 2)  # regions x slices x H x W
    np.testing.assert_array_equal(vols["a"][:, 0], masks[2])  # slice 1 first
    np.testing.assert_array_equal(vols["a"][:, 1], masks[3])  # then slice 3
    np.testing.assert_array_equal(vols["a"][:, 2], masks[0])  # then slice 5
    np.testing.assert_array_equal(vols["b"][:, 0], masks[1])


def test_duplicate_slice_index_is_refused() -> None:
    with pytest.raises(InputError, match="slice index 2"):
        check_slice_order(["a", "a", "b"], np.array([2, 2, 0]), "test set")
    check_slice_order(["a", "b", "a"], np.array([2, 2, -1]), "test set")  # different subjects: fine


def test_accumulator_matches_restacked_volumes() -> None:
    rng = np.random.default_rng(7)
    n, size = 40, 8
    subjects = [f"s{k}" for k in rng.integers(0, 5, n)]
    slices = np.zeros(n, dtype=np.int64)
    for sub in set(subjects):  # shuffled slice order within each subject
        rows = [i for i, s in enumerate(subjects) if s == sub]
        slices[rows] = rng.permutation(len(rows))
    true = rng.random((n, 3, size, size)) < 0.1
    pred = true ^ (rng.random((n, 3, size, size)) < 0.05)
    true[[i for i, s in enumerate(subjects) if s == "s0"], 2] = False  # a subject without ET
    acc = DiceAccumulator([*sorted(set(subjects)), "unused"])
    for start in range(0, n, 7):  # uneven batches
        acc.update(pred[start : start + 7], true[start : start + 7], subjects[start : start + 7])
    got = {d.subject: d for d in acc.result()}
    assert "unused" not in got
    pv, tv = stack_volumes(pred, subjects, slices), stack_volumes(true, subjects, slices)
    for sub in set(subjects):
        for j, region in enumerate(REGIONS):
            assert got[sub].dice[region] == pytest.approx(volume_dice(pv[sub][j], tv[sub][j]), abs=1e-12)
            assert got[sub].true_voxels[region] == int(tv[sub][j].sum())
        assert got[sub].slices == subjects.count(sub)


def test_accumulator_rejects_unknown_subject() -> None:
    acc = DiceAccumulator(["a"])
    with pytest.raises(InputError, match="'b'"):
        acc.update(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 2, 2)), ["b"])
