from __future__ import annotations

import numpy as np
import pytest
import torch

from synthgate.audit.align import align_block
from synthgate.audit.candidates import descriptor_candidates, descriptor_sym_size, descriptors
from synthgate.audit.features import pearson_features
from synthgate.audit.planted import _geom
from synthgate.audit.transforms import apply_match_transform, make_warps, transform_name

from .conftest import blob_images

WARPS = make_warps((-10.0, -5.0, 5.0, 10.0), (0.95, 1.05))
WIDE = make_warps((-20.0, -10.0, 10.0, 20.0), (0.87, 1.15))
CH = (0, 1)


def feats(x: np.ndarray) -> torch.Tensor:
    f = pearson_features(x, CH, 2).vectors
    return torch.from_numpy(f).reshape(len(x), len(CH), *x.shape[-2:])


def align_one(query: np.ndarray, candidates: np.ndarray, warps, max_shift: int):  # type: ignore[no-untyped-def]
    cf = feats(candidates)
    return align_block(feats(query[None]), np.array([True]), np.arange(len(candidates))[None], lambda e: cf[e],
                       warps, max_shift)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([np.corrcoef(a[c].ravel(), b[c].ravel())[0, 1] for c in CH]))


def test_warp_grid_starts_with_identity() -> None:
    assert WARPS[0].identity and len(WARPS) == 15 and len(set(WARPS)) == 15
    assert make_warps((), ()) == (WARPS[0],)


def test_identity_alignment_equals_pixel_pearson() -> None:
    x = blob_images(5, seed=11)
    f = pearson_features(x, CH, 2).vectors
    al = align_one(x[0], x[1:], WARPS[:1], 0)
    pix = f[1:] @ f[0]
    assert al.entry[0] == int(np.argmax(pix))
    assert al.score[0] == pytest.approx(float(pix.max()), abs=1e-5)


@pytest.mark.parametrize(("dy", "dx"), [(3, -2), (-4, 4), (0, 1)])
def test_recovers_a_shift(dy: int, dx: int) -> None:
    x = blob_images(4, seed=12)
    moved = _geom(x[2], dy=dy, dx=dx, label=2)
    al = align_one(moved, x, WARPS[:1], 4)
    assert (al.entry[0], al.shift_y[0], al.shift_x[0]) == (2, dy, dx)
    assert al.score[0] > 0.98
    assert transform_name(False, 0.0, 1.0, dy, dx) == "shift"


@pytest.fixture(params=["full", "half"])
def grid_resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the rotation / zoom grid at full resolution and at half resolution."""
    from synthgate.audit import align

    monkeypatch.setattr(align, "GRID_HALF_MIN_SIDE", 10**6 if request.param == "full" else 32)
    return str(request.param)


@pytest.mark.parametrize("angle", [10.0, -5.0])
def test_recovers_a_rotation(angle: float, grid_resolution: str) -> None:
    x = blob_images(4, size=48, seed=13)
    turned = _geom(x[1], angle=angle, label=2)
    plain = align_one(turned, x, WARPS[:1], 5)
    al = align_one(turned, x, WARPS, 5)
    assert al.entry[0] == 1 and al.angle_deg[0] == angle
    assert al.score[0] > 0.97 > plain.score[0]


@pytest.mark.parametrize(("angle", "zoom", "dy", "dx", "flip"),
                         [(10.0, 1.0, 3.0, -2.0, False), (-5.0, 1.05, -2.0, 4.0, True), (0.0, 0.95, 0.0, 3.0, False)])
def test_reported_transform_maps_the_training_image_onto_the_copy(angle: float, zoom: float, dy: float, dx: float,
                                                                  flip: bool, grid_resolution: str) -> None:
    x = blob_images(3, size=48, seed=15)
    src = x[1][..., ::-1] if flip else x[1]
    copy = _geom(_geom(src, angle=angle, zoom=zoom, label=2), dy=dy, dx=dx, label=2)
    cands = np.stack([x[0], x[1][..., ::-1] if flip else x[1], x[2]])
    al = align_one(copy, cands, WARPS, 6)
    assert al.entry[0] == 1 and al.angle_deg[0] == angle and al.scale[0] == zoom
    moved = apply_match_transform(x[1], flip, al.angle_deg[0], al.scale[0], al.shift_y[0], al.shift_x[0])
    assert pearson(moved, copy) > 0.97
    assert pearson(moved, copy) > pearson(x[1], copy) + 0.05


def test_alignment_batches_queries_with_different_candidates() -> None:
    x = blob_images(6, seed=16)
    q = np.stack([_geom(x[1], dy=2, dx=0, label=2), _geom(x[4], dy=0, dx=-3, label=2)])
    cf = feats(x)
    entries = np.array([[0, 1, -1], [4, 5, 2]])
    al = align_block(feats(q), np.array([True, True]), entries, lambda e: cf[e], WARPS[:1], 4)
    assert al.entry.tolist() == [1, 4]
    assert (al.shift_y.tolist(), al.shift_x.tolist()) == ([2, 0], [0, -3])
    none = align_block(feats(q), np.array([False, True]), entries, lambda e: cf[e], WARPS[:1], 4)
    assert none.entry[0] == -1 and np.isneginf(none.score[0]) and none.entry[1] == 4


def test_descriptor_is_shift_invariant_and_discriminative() -> None:
    x = blob_images(6, seed=14)
    moved = np.stack([_geom(x[i], dy=3, dx=-3, label=2) for i in range(6)])
    shape = (2, *x.shape[-2:])
    d = descriptors(pearson_features(x, CH, 2).vectors, shape)
    dm = descriptors(pearson_features(moved, CH, 2).vectors, shape)
    sim = dm @ d.T
    assert (np.argmax(sim, axis=1) == np.arange(6)).all()
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("side", [64, 20, 8])
def test_descriptor_of_a_mirror_is_a_sign_and_mirrors_are_searched(side: int) -> None:
    import torch.nn.functional as F

    x = F.interpolate(torch.from_numpy(blob_images(12, seed=15)), size=(side, side), mode="bilinear").numpy()
    shape = (2, side, side)
    f = pearson_features(x, CH, 2).vectors
    mirrored = pearson_features(np.ascontiguousarray(x[..., ::-1]), CH, 2).vectors
    d, dm = descriptors(f, shape), descriptors(mirrored, shape)
    s = descriptor_sym_size(shape)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    # equal up to the FFT's rounding (the square root of a small magnitude amplifies it)
    np.testing.assert_allclose(dm, np.concatenate([d[:, :s], -d[:, s:]], axis=1), atol=3e-4)
    # queries are the mirrors of images 0..3: each finds its source as entry 2 j + 1 (mirrored)
    db, q = d, dm[:4]
    got = descriptor_candidates(q, db, np.ones(len(db), bool), 3, 2, 1, s)
    brute = np.concatenate([q @ db.T, np.concatenate([q[:, :s], -q[:, s:]], axis=1) @ db.T], axis=1)
    ent = np.concatenate([2 * np.arange(len(db)), 2 * np.arange(len(db)) + 1])
    for i in range(len(q)):
        order = np.argsort(-brute[i], kind="stable")[:3]
        assert got[i].tolist() == ent[order].tolist()
    assert got[:, 0].tolist() == [2 * j + 1 for j in range(4)]


def test_transform_names() -> None:
    assert transform_name(False, 0.0, 1.0, 0, 0) == "identity"
    assert transform_name(True, 5.0, 1.05, 0, 2) == "hflip+rotate+zoom+shift"


def test_identity_starts_hold_the_best_unwarped_candidate_where_the_grid_chose_another_pair(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from synthgate.audit import align

    x = blob_images(3, size=48, seed=36)
    turned = _geom(x[1], angle=20.0, label=2)
    queries = feats(np.stack([turned, x[2]]))
    cf = feats(x)
    entries = np.array([[0, 1, 2], [0, 1, 2]])
    far = align_block(queries, np.array([True, True]), entries, lambda e: cf[e], WIDE, 4, identity_starts=True)
    assert far.entry[0] == 1 and far.entry[2] == -1  # the grid's winner is far ahead of the identity warp's best
    monkeypatch.setattr(align, "IDENTITY_START_MARGIN", 2.0)  # every other pair is a second start
    both = align_block(queries, np.array([True, True]), entries, lambda e: cf[e], WIDE, 4, identity_starts=True)
    assert len(both.entry) == 4
    winner, start = both.subset(np.arange(2)), both.subset(np.arange(2, 4))
    assert winner.entry[0] == 1 and winner.angle_deg[0] == 20.0  # the grid's warp wins for the turned copy
    unwarped = [pearson(turned, x[j]) for j in range(3)]
    # the second start is the candidate the identity warp (with shifts) scores best, unwarped
    assert start.entry[0] >= 0 and start.angle_deg[0] == 0.0 and start.scale[0] == 1.0
    assert start.score[0] >= max(unwarped) - 1e-5
    assert winner.entry[1] == 2 and winner.angle_deg[1] == 0.0 and start.entry[1] == -1  # the same pair: no second
    plain = align_block(queries, np.array([True, True]), entries, lambda e: cf[e], WIDE, 4)
    np.testing.assert_array_equal(plain.entry, winner.entry)
