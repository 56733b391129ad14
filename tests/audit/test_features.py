from __future__ import annotations

import numpy as np
import pytest

from synthgate.audit.features import (
    check_finite,
    feature_channels,
    hflip,
    pearson_features,
)
from synthgate.errors import InputError

from .conftest import blob_images
from .reference import pearson_reference


def test_inner_product_is_channel_mean_pearson() -> None:
    x = blob_images(6, seed=4)
    ch = feature_channels(3, 2, include_label=False)
    assert ch == (0, 1)
    f = pearson_features(x, ch, 2)
    assert f.valid.all()
    for i in range(6):
        for j in range(6):
            ref = pearson_reference(x[i], x[j], ch)
            assert abs(float(f.vectors[i] @ f.vectors[j]) - ref) < 1e-5


def test_invariant_to_channel_scale_and_offset() -> None:
    x = blob_images(2, seed=5)
    y = x.copy()
    y[:, 0] = 3.0 * y[:, 0] + 7.0
    y[:, 1] = 0.1 * y[:, 1] - 2.0
    fx = pearson_features(x, (0, 1), 2).vectors
    fy = pearson_features(y, (0, 1), 2).vectors
    np.testing.assert_allclose(fx, fy, atol=2e-5)


def test_zero_variance_image_channel_marks_image_invalid() -> None:
    x = blob_images(3, seed=6)
    x[1, 0] = 0.5  # one constant image channel
    f = pearson_features(x, (0, 1), 2)
    assert f.valid.tolist() == [True, False, True]
    assert not f.vectors[1].any()
    assert np.isfinite(f.vectors).all()


def test_constant_label_channel_agrees_with_constant_label() -> None:
    x = blob_images(3, seed=7)
    x[0, 2] = 0.0
    x[1, 2] = 0.0  # two tumour-free slices; image 2 has a tumour
    ch = feature_channels(3, 2, include_label=True)
    f = pearson_features(x, ch, 2)
    assert f.valid.all()
    lab = slice(2 * 32 * 32, 3 * 32 * 32)
    # label parts: constant-vs-constant = 1/3 (r = 1 averaged over 3 channels); constant-vs-tumour = 0
    assert abs(float(f.vectors[0, lab] @ f.vectors[1, lab]) - 1 / 3) < 1e-6
    assert abs(float(f.vectors[0, lab] @ f.vectors[2, lab])) < 1e-6
    assert abs(float(f.vectors[2] @ f.vectors[2]) - 1.0) < 1e-5


def test_check_finite_names_the_image() -> None:
    x = blob_images(3, seed=8)
    check_finite(x, ["a", "b", "c"], 0, "--synthetic")
    x[2, 1, 3, 3] = np.nan
    with pytest.raises(InputError, match="'c'.*NaN"):
        check_finite(x, ["a", "b", "c"], 0, "--synthetic")
    x[2, 1, 3, 3] = np.inf
    with pytest.raises(InputError, match="--train: image 'z'"):
        check_finite(x, ["w", "x", "y", "z"], 1, "--train")


def test_hflip_mirrors_last_axis() -> None:
    x = blob_images(1, seed=9)
    np.testing.assert_array_equal(hflip(x)[0, 0, :, 0], x[0, 0, :, -1])
    np.testing.assert_array_equal(hflip(hflip(x)), x)
