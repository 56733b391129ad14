from __future__ import annotations

import numpy as np
import pytest
import torch

from synthgate.audit.features import pearson_features
from synthgate.audit.planted import _geom
from synthgate.audit.refine import refine
from synthgate.audit.scores import structure_and_partial

from .conftest import blob_images
from .test_align import WIDE, align_one, feats


def pair_scores(q: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    s, p = structure_and_partial(feats(q[None]), feats(t[None]))
    return float(s[0]), float(p[0])


def test_partial_copy_scores_higher_than_an_unrelated_slice() -> None:
    x = blob_images(3, size=48, seed=31)
    half = x[2].copy()
    half[:, :24] = x[0][:, :24]  # the top half of training image 0 pasted over another brain
    copy_s, copy_p = pair_scores(half, x[0])
    other_s, other_p = pair_scores(half, x[1])
    assert copy_p > 0.95 and copy_p > other_p + 0.3
    assert copy_s > other_s  # the whole-image structure score sees half of it
    whole = float((pearson_features(half[None], (0, 1), 2).vectors @ pearson_features(x[0][None], (0, 1), 2).vectors.T)[0, 0])
    assert copy_p > whole  # the window finds what the whole image dilutes


def test_a_pasted_patch_scores_as_a_copy_wherever_it_sits() -> None:
    x = blob_images(3, size=64, seed=35)
    for y0, x0 in ((19, 23), (25, 17), (16, 16)):  # off and on the window grid
        patched = x[1].copy()
        patched[:, y0 : y0 + 24, x0 : x0 + 24] = x[0][:, y0 : y0 + 24, x0 : x0 + 24]  # a seventh of the image
        _, copy_p = pair_scores(patched, x[0])
        _, other_p = pair_scores(patched, x[2])
        assert copy_p > 0.95 and copy_p > other_p + 0.2


def test_best_fraction_mean_equals_sorting_each_row() -> None:
    from synthgate.audit.scores import best_fraction_mean

    rng = np.random.default_rng(8)
    values = rng.uniform(-1, 1, (6, 300))
    valid = rng.uniform(size=(6, 300)) < np.array([0.9, 0.5, 0.1, 0.01, 0.0, 1.0])[:, None]
    got = best_fraction_mean(torch.from_numpy(values), torch.from_numpy(valid), 0.05).numpy()
    for row, v, ok in zip(got, values, valid, strict=True):
        kept = np.sort(v[ok])[::-1]
        want = kept[: max(1, round(0.05 * len(kept)))].mean() if len(kept) else -1.0
        assert row == pytest.approx(want, abs=1e-12)
    assert best_fraction_mean(torch.zeros(0, 5), torch.zeros(0, 5, dtype=torch.bool), 0.05).shape == (0,)


def test_structure_score_tolerates_gamma_and_separates_patients() -> None:
    x = blob_images(3, size=48, seed=32)
    gamma = x[0].copy()
    gamma[:2] = np.clip(gamma[:2], 0, None) ** 1.5
    s_copy, _ = pair_scores(gamma, x[0])
    s_other, _ = pair_scores(gamma, x[1])
    assert s_copy > 0.9 > s_other


def test_a_20_degree_rotation_aligns_back_within_a_degree() -> None:
    x = blob_images(4, size=64, seed=33)
    turned = _geom(x[1], angle=17.0, label=2)
    al = align_one(turned, x, WIDE, 8)  # grid: -20, -10, 0, 10, 20 (+ zoom)
    assert al.entry[0] == 1
    start = [np.array([v[0]]) for v in (al.angle_deg, al.scale, al.shift_y, al.shift_x)]
    ref = refine(feats(turned[None]), feats(x[1][None]), *start)
    assert abs(ref.angle_deg[0] - 17.0) < 1.0
    assert abs(ref.scale[0] - 1.0) < 0.02 and abs(ref.shift_y[0]) < 0.5 and abs(ref.shift_x[0]) < 0.5
    assert ref.score[0] >= al.score[0] - 1e-6 and ref.score[0] > 0.98


def test_refinement_keeps_fixed_parameters_fixed() -> None:
    x = blob_images(2, size=48, seed=34)
    turned = _geom(x[0], angle=7.0, label=2)
    z = [np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1)]
    ref = refine(feats(turned[None]), feats(x[0][None]), *z, free=(False, False, True))
    assert ref.angle_deg[0] == 0.0 and ref.scale[0] == 1.0
    free = refine(feats(turned[None]), feats(x[0][None]), *z)
    assert free.score[0] > ref.score[0] and abs(free.angle_deg[0] - 7.0) < 1.0
    assert torch.is_tensor(feats(x))


def test_pairs_sharing_a_query_score_as_if_each_had_its_own_copy() -> None:
    x = blob_images(4, size=48, seed=33)
    queries = feats(x[:2])
    aligned = feats(x[[1, 2, 3, 0]])
    pair_query = torch.tensor([0, 0, 1, 1])
    shared = structure_and_partial(queries, aligned, pair_query)
    repeated = structure_and_partial(queries[pair_query], aligned)
    for a, b in zip(shared, repeated, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("side", [128, 96, 50])
def test_block_sums_equal_direct_window_sums(side: int) -> None:
    rng = np.random.default_rng(4)
    q = torch.from_numpy(rng.standard_normal((3, 2, side, side)).astype(np.float32))
    a = q + 0.5 * torch.from_numpy(rng.standard_normal((3, 2, side, side)).astype(np.float32))
    a[:, :, : side // 3] = 0.0  # part of the image is background
    fast = structure_and_partial(q, a)
    slow = structure_and_partial(q, a, by_blocks=False)
    for f, s in zip(fast, slow, strict=True):
        np.testing.assert_allclose(f, s, rtol=0, atol=2e-5)
    assert (fast[0] > 0.3).all() and (fast[1] >= fast[0] - 0.2).all()


@pytest.mark.parametrize("k", [1, 2, 3, 7, 9, 16, 17])
def test_window_sums_by_doubling_equal_direct_sums(k: int) -> None:
    from synthgate.audit.scores import _window_sums

    x = torch.from_numpy(np.random.default_rng(k).normal(size=(2, 3, 40, 33)))  # float64: exact to rounding
    for dim in (-1, -2):
        n = x.shape[dim] - k + 1
        want = torch.stack([x.narrow(dim, i, k).sum(dim=dim) for i in range(n)], dim=dim)
        torch.testing.assert_close(_window_sums(x, k, dim), want, atol=1e-12, rtol=0)
