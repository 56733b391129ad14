from __future__ import annotations

import numpy as np
import pytest

from synthgate.audit.features import pearson_features
from synthgate.audit.planted import _geom
from synthgate.audit.robust import align, make_warps, shift_descriptors, transform_name

from .conftest import blob_images

WARPS = make_warps((-10.0, -5.0, 5.0, 10.0), (0.95, 1.05))


def test_warp_grid_starts_with_identity() -> None:
    assert WARPS[0].identity and len(WARPS) == 15 and len(set(WARPS)) == 15
    assert make_warps((), ()) == (WARPS[0],)


def test_identity_alignment_equals_pixel_pearson() -> None:
    x = blob_images(5, seed=11)
    f = pearson_features(x, (0, 1), 2).vectors
    al = align(x[0], x[1:], (0, 1), 2, WARPS[:1], 0)
    pix = f[1:] @ f[0]
    assert al.candidate[0] == int(np.argmax(pix))
    assert al.score[0] == pytest.approx(float(pix.max()), abs=1e-5)


@pytest.mark.parametrize(("dy", "dx"), [(3, -2), (-4, 4), (0, 1)])
def test_recovers_a_shift(dy: int, dx: int) -> None:
    x = blob_images(4, seed=12)
    moved = _geom(x[2], dy=dy, dx=dx, label=2)
    al = align(moved, x, (0, 1), 2, WARPS[:1], 4)
    assert (al.candidate[0], al.shift_y[0], al.shift_x[0]) == (2, dy, dx)
    assert al.score[0] > 0.98
    assert transform_name(False, 0.0, 1.0, dy, dx) == "shift"


@pytest.mark.parametrize("angle", [10.0, -5.0])
def test_recovers_a_rotation(angle: float) -> None:
    x = blob_images(4, size=48, seed=13)
    turned = _geom(x[1], angle=angle, label=2)
    plain = align(turned, x, (0, 1), 2, WARPS[:1], 5)
    al = align(turned, x, (0, 1), 2, WARPS, 5)
    assert al.candidate[0] == 1 and al.angle_deg[0] == angle
    assert al.score[0] > 0.97 > plain.score[0]


def test_descriptor_is_shift_invariant_and_discriminative() -> None:
    x = blob_images(6, seed=14)
    moved = np.stack([_geom(x[i], dy=3, dx=-3, label=2) for i in range(6)])
    d = shift_descriptors(x, (0, 1))
    dm = shift_descriptors(moved, (0, 1))
    sim = dm @ d.T
    assert (np.argmax(sim, axis=1) == np.arange(6)).all()
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)


def test_transform_names() -> None:
    assert transform_name(False, 0.0, 1.0, 0, 0) == "identity"
    assert transform_name(True, 5.0, 1.05, 0, 2) == "hflip+rotate+zoom+shift"
