from __future__ import annotations

import numpy as np
import pytest

from synthgate.data.labels import BRATS2013, BRATS2021, BRATS2023, LabelMap, check_label_values, label_map_for
from synthgate.errors import InputError


def test_regions_per_convention():
    lab = np.array([0, 1, 2, 3, 4])
    assert BRATS2013.region_mask(lab, "WT").tolist() == [False, True, True, True, True]
    assert BRATS2013.region_mask(lab, "TC").tolist() == [False, True, False, True, True]
    assert BRATS2013.region_mask(lab, "ET").tolist() == [False, False, False, False, True]
    lab21 = np.array([0, 1, 2, 4])
    assert BRATS2021.region_mask(lab21, "TC").tolist() == [False, True, False, True]
    assert BRATS2021.region_mask(lab21, "ET").tolist() == [False, False, False, True]
    lab23 = np.array([0, 1, 2, 3])
    assert BRATS2023.region_mask(lab23, "ET").tolist() == [False, False, False, True]
    assert BRATS2023.region_mask(lab23, "WT").tolist() == [False, True, True, True]


def test_json_round_trip_and_lookup():
    assert LabelMap.from_json(BRATS2013.to_json()) == BRATS2013
    assert label_map_for("brats2023") is BRATS2023
    with pytest.raises(InputError, match="unknown label convention 'brats1999'"):
        label_map_for("brats1999")


def test_check_label_values():
    check_label_values(np.array([0.0, 1.0, 4.0]), BRATS2021, "x")
    with pytest.raises(InputError, match="label values 3 are not in the brats2021"):
        check_label_values(np.array([0, 3]), BRATS2021, "seg.nii.gz")
    with pytest.raises(InputError, match="0.5"):
        check_label_values(np.array([0, 0.5]), BRATS2013, "seg.nii.gz")
