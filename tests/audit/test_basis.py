from __future__ import annotations

import numpy as np
import pytest
import torch

from synthgate.audit.basis import from_mirror_basis, mirror_in_basis, sym_columns, to_mirror_basis


@pytest.mark.parametrize("shape", [(2, 5, 8), (3, 4, 7), (1, 3, 1)])
def test_basis_keeps_inner_products_and_mirrors_by_a_sign(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, int(np.prod(shape)))).astype(np.float32)
    mirrored = x.reshape(6, *shape)[..., ::-1].reshape(6, -1)
    bx = to_mirror_basis(x, shape).numpy()
    s = sym_columns(shape)
    assert s == shape[0] * shape[1] * (shape[2] - shape[2] // 2)
    np.testing.assert_allclose(bx @ bx.T, x.astype(np.float64) @ x.T, rtol=1e-5, atol=1e-5)  # orthonormal
    np.testing.assert_allclose(bx @ mirror_in_basis(bx, s).T, x.astype(np.float64) @ mirrored.T, rtol=1e-5, atol=1e-5)
    # the mirror in the basis is exactly the basis of the mirrored images: a mirrored copy scores as a copy
    np.testing.assert_array_equal(to_mirror_basis(mirrored, shape).numpy(), mirror_in_basis(bx, s))
    np.testing.assert_allclose(from_mirror_basis(bx, shape).numpy(), x, rtol=0, atol=1e-6)  # the round trip


def test_basis_writes_into_out_and_takes_tensors() -> None:
    shape = (2, 3, 4)
    x = torch.randn(5, 24)
    out = torch.full((5, 24), np.nan)
    got = to_mirror_basis(x, shape, out=out)
    assert got is out and torch.isfinite(out).all()
    np.testing.assert_array_equal(out.numpy(), to_mirror_basis(x.numpy(), shape).numpy())
