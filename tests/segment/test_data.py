"""Region targets from each BraTS label convention, and batches across sets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from synthgate.data.labels import BRATS2013, BRATS2021, BRATS2023
from synthgate.errors import InputError
from synthgate.segment.data import SegmentationData, check_labelled, region_targets, targets_from_labels


@pytest.mark.parametrize(
    ("label_map", "expected"),
    [
        # value:      0  1  2  3  4       (3 does not exist in brats2021, 4 not in brats2023)
        (BRATS2013, {"WT": [0, 1, 1, 1, 1], "TC": [0, 1, 0, 1, 1], "ET": [0, 0, 0, 0, 1]}),
        (BRATS2021, {"WT": [0, 1, 1, 0, 1], "TC": [0, 1, 0, 0, 1], "ET": [0, 0, 0, 0, 1]}),
        (BRATS2023, {"WT": [0, 1, 1, 1, 0], "TC": [0, 1, 0, 1, 0], "ET": [0, 0, 0, 1, 0]}),
    ],
)
def test_region_mapping_per_convention(label_map, expected) -> None:  # type: ignore[no-untyped-def]
    labels = np.array([[[0.0, 1.0, 2.0, 3.0, 4.0]]])  # 1 x 1 x 5
    t = targets_from_labels(labels, label_map)
    assert t.shape == (1, 3, 1, 5)
    for j, region in enumerate(("WT", "TC", "ET")):
        assert t[0, j, 0].tolist() == expected[region], region


def test_region_targets_of_a_set(tumour_set) -> None:  # type: ignore[no-untyped-def]
    s = tumour_set(n_subjects=1, slices=3, size=16)
    t = region_targets(s)
    lab = s.images[:, 2]
    np.testing.assert_array_equal(t[:, 0], lab > 0)
    np.testing.assert_array_equal(t[:, 1], (lab == 1) | (lab == 4))
    np.testing.assert_array_equal(t[:, 2], lab == 4)
    assert t[:, 2].any() and not t[0].any()  # slice 0 is tumour-free by construction


def test_batch_across_sets_matches_each_set(tumour_set) -> None:  # type: ignore[no-untyped-def]
    a = tumour_set(n_subjects=2, slices=3, size=16, seed=1, prefix="a")
    b = tumour_set(n_subjects=1, slices=4, size=16, seed=2, prefix="b", label_map=BRATS2013)
    data = SegmentationData((a, b), ("syn", "real"))
    assert len(data) == 10 and data.in_channels == 2 and data.size == (16, 16)
    idx = np.array([9, 0, 6, 3])
    x, y = data.batch(idx)
    for k, i in enumerate(idx):
        s, local = (a, i) if i < 6 else (b, i - 6)
        np.testing.assert_array_equal(x[k], s.images[local, :2])
        np.testing.assert_array_equal(y[k], region_targets(s, [local])[0])
    assert data.subjects[0] == "syn:a00" and data.subjects[-1] == "real:b00"


def test_unlabelled_set_is_refused(tumour_set) -> None:  # type: ignore[no-untyped-def]
    s = tumour_set(n_subjects=1, slices=2, size=16)
    with pytest.raises(InputError, match="no label channel"):
        check_labelled(replace(s, label_channel=None, label_map=None), "synthetic set")


def test_label_values_outside_the_map_are_refused(tumour_set) -> None:  # type: ignore[no-untyped-def]
    s = tumour_set(n_subjects=1, slices=2, size=16)
    images = s.images.copy()
    images[0, 2, 0, 0] = 3.0  # not a brats2021 value
    with pytest.raises(InputError, match="label values 3"):
        check_labelled(replace(s, images=images), "real test set")


def test_incompatible_sets_are_refused(tumour_set) -> None:  # type: ignore[no-untyped-def]
    a = tumour_set(n_subjects=1, slices=2, size=16)
    b = tumour_set(n_subjects=1, slices=2, size=32)
    with pytest.raises(InputError, match="16x16"):
        SegmentationData((a, b), ("synthetic set", "real training set"))
