"""Planted copies: each hard kind is the transform it says, the label keeps its values, partners differ."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from synthgate.audit.planted import (
    BASIC_KINDS,
    HARD_KINDS,
    OTHER_SUBJECT_KINDS,
    CopyKind,
    copy_partners,
    plant_copies,
    transform_copy,
)
from synthgate.errors import UsageError

from .conftest import blob_images, make_set

LABEL = 2  # blob_images: 2 image channels + the label
SIZE = 64


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    x = blob_images(2, size=SIZE, seed=7)
    return x[0], x[1]


def copy(kind: CopyKind, pair: tuple[np.ndarray, np.ndarray], seed: int = 0):  # type: ignore[no-untyped-def]
    return transform_copy(pair[0], kind, np.random.default_rng(seed), other=pair[1], label=LABEL)


def interior(a: np.ndarray, margin: int = 12) -> np.ndarray:
    return a[..., margin:-margin, margin:-margin]


@pytest.mark.parametrize("kind", HARD_KINDS)
def test_shape_dtype_and_label_values(kind: CopyKind, pair: tuple[np.ndarray, np.ndarray]) -> None:
    for seed in range(3):
        c = copy(kind, pair, seed)
        assert c.image.shape == pair[0].shape and c.image.dtype == np.float32
        assert set(np.unique(c.image[LABEL])) <= set(np.unique(pair[0][LABEL])) | set(np.unique(pair[1][LABEL]))
        assert not np.array_equal(c.image, pair[0])


def test_rotate20_is_a_rotation_by_15_to_20_degrees(pair: tuple[np.ndarray, np.ndarray]) -> None:
    for seed in range(4):
        c = copy(CopyKind.ROTATE20, pair, seed)
        assert 15 <= abs(c.params["angle"]) <= 20
        ref = ndi.rotate(pair[0][0], c.params["angle"], reshape=False, order=1)
        np.testing.assert_allclose(interior(c.image[0]), interior(ref), atol=1e-4)
        wrong = ndi.rotate(pair[0][0], -c.params["angle"], reshape=False, order=1)
        assert np.abs(interior(c.image[0]) - interior(wrong)).mean() > 0.1


@pytest.mark.parametrize(("kind", "lo", "hi"), [(CopyKind.ZOOM_IN, 1.10, 1.15), (CopyKind.ZOOM_OUT, 0.87, 0.91)])
def test_zoom_scales_the_brain_area(kind: CopyKind, lo: float, hi: float, pair: tuple[np.ndarray, np.ndarray]) -> None:
    c = copy(kind, pair)
    z = c.params["zoom"]
    assert lo <= z <= hi
    # zoom about the centre scales the integral of the image by z^2 (the brain stays inside the frame)
    assert c.image[0].sum() / pair[0][0].sum() == pytest.approx(z * z, rel=0.02)
    assert c.image[1].sum() / pair[0][1].sum() == pytest.approx(z * z, rel=0.02)


def test_large_shift_moves_by_13_to_16_percent(pair: tuple[np.ndarray, np.ndarray]) -> None:
    for seed in range(4):
        c = copy(CopyKind.SHIFT_LARGE, pair, seed)
        dy, dx = c.params["dy"], c.params["dx"]
        assert 0.13 * SIZE <= np.hypot(dy, dx) <= 0.16 * SIZE + 1e-9
        ref = ndi.shift(pair[0][0], (dy, dx), order=1)
        np.testing.assert_allclose(c.image[0], ref, atol=1e-4)
        assert np.abs(c.image[0] - pair[0][0]).mean() > 0.1


def test_gamma_is_a_monotone_power_of_the_scaled_channel(pair: tuple[np.ndarray, np.ndarray]) -> None:
    for seed in range(6):
        c = copy(CopyKind.GAMMA, pair, seed)
        g = c.params["gamma"]
        assert 0.6 <= g <= 0.8 or 1.3 <= g <= 1.6
        for ch in (0, 1):
            x, y = pair[0][ch], c.image[ch]
            u = (x - x.min()) / (x.max() - x.min())
            np.testing.assert_allclose((y - y.min()) / (y.max() - y.min()), u ** g, atol=1e-5)
        np.testing.assert_array_equal(c.image[LABEL], pair[0][LABEL])


def test_elastic_moves_edges_by_at_most_4_px(pair: tuple[np.ndarray, np.ndarray]) -> None:
    for seed in range(3):
        c = copy(CopyKind.ELASTIC, pair, seed)
        d = c.params["max_displacement"]
        assert 2 <= d <= 4
        before, after = np.abs(pair[0][0]) > 0, np.abs(c.image[0]) > 0
        changed = before ^ after
        assert changed.any()
        dist = ndi.distance_transform_edt(~(before ^ ndi.binary_erosion(before)))
        assert dist[changed].max() <= d + 1.5  # every changed mask pixel lies within d (+ resampling) of the edge
        assert np.corrcoef(pair[0][0].ravel(), c.image[0].ravel())[0, 1] > 0.5


def test_half_copy_equals_the_source_on_its_half(pair: tuple[np.ndarray, np.ndarray]) -> None:
    tops = set()
    for seed in range(6):
        c = copy(CopyKind.HALF, pair, seed)
        top = bool(c.params["top"])
        tops.add(top)
        mine, theirs = (slice(0, SIZE // 2), slice(SIZE // 2, SIZE)) if top else (slice(SIZE // 2, SIZE),
                                                                                  slice(0, SIZE // 2))
        np.testing.assert_array_equal(c.image[:, mine], pair[0][:, mine])
        np.testing.assert_array_equal(c.image[:, theirs], pair[1][:, theirs])
    assert tops == {True, False}


def test_patch_copy_is_a_quarter_around_the_tumour(pair: tuple[np.ndarray, np.ndarray]) -> None:
    c = copy(CopyKind.PATCH, pair)
    y0, y1, x0, x1 = (int(c.params[k]) for k in ("y0", "y1", "x0", "x1"))
    assert (y1 - y0) * (x1 - x0) == SIZE * SIZE // 4
    inside = np.zeros((SIZE, SIZE), bool)
    inside[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(c.image[:, inside], pair[0][:, inside])
    np.testing.assert_array_equal(c.image[:, ~inside], pair[1][:, ~inside])
    tumour = pair[0][LABEL] > 0
    assert tumour.any() and inside[tumour].all()


@pytest.mark.parametrize(("kind", "w"), [(CopyKind.BLEND, 0.7), (CopyKind.BLEND50, 0.5)])
def test_blends(kind: CopyKind, w: float, pair: tuple[np.ndarray, np.ndarray]) -> None:
    c = copy(kind, pair)
    np.testing.assert_allclose(c.image[:LABEL], w * pair[0][:LABEL] + (1 - w) * pair[1][:LABEL], atol=1e-6)
    np.testing.assert_array_equal(c.image[LABEL], pair[0][LABEL])
    with pytest.raises(UsageError, match="second image"):
        transform_copy(pair[0], kind, np.random.default_rng(0), label=LABEL)


def test_partial_copies_take_another_subjects_slice() -> None:
    train = make_set(blob_images(16, size=32, seed=1), "tr")  # 4 subjects of 4 slices
    kinds = sorted(OTHER_SUBJECT_KINDS)
    copies, rows = plant_copies(train, 4, kinds=kinds, seed=5)
    assert copies.sources == tuple(str(k) for k in kinds for _ in range(4))
    for f, (kind, r) in enumerate(zip(copies.sources or (), rows, strict=True)):
        y, src, ch = copies.images[f], train.images[r], slice(None)
        if kind == CopyKind.BLEND50:  # the partner's image channels (the label is the source's)
            y, ch = 2 * y - src, slice(0, LABEL)
        # the partner is the training slice that equals the copy where the source does not
        differs = ~np.isclose(y[ch], src[ch], atol=1e-5).all(0)
        partner = [p for p in range(len(train))
                   if np.allclose(y[ch][:, differs], train.images[p][ch][:, differs], atol=1e-4)]
        assert len(partner) == 1 and train.subjects[partner[0]] != train.subjects[r], (kind, f)
        assert copy_partners(train, 4, kinds=kinds, seed=5)[f] == partner[0]  # the partner, as the benchmark reads it


def test_basic_kinds_are_the_default_and_hard_kinds_follow() -> None:
    train = make_set(blob_images(8, size=32, seed=1), "tr")
    basic, rows = plant_copies(train, 2, seed=5)
    assert basic.sources == tuple(str(k) for k in BASIC_KINDS for _ in range(2)) and len(rows) == len(basic)
    assert set(BASIC_KINDS) | set(HARD_KINDS) == set(CopyKind) and not set(BASIC_KINDS) & set(HARD_KINDS)
    both, _ = plant_copies(train, 1, kinds=list(CopyKind), seed=5)  # 19 copies of 8 images: rows repeat
    assert len(both) == len(CopyKind)
