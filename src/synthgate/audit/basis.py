"""The mirror basis: feature vectors rewritten so that one GEMM scores a query and its left-right mirror.

The audit scores every query ``q`` against every training image ``b`` and against its mirror ``P b``
(``<q, P b> = <P q, b>``). Done directly that is two GEMMs over all ``d`` columns. Pair each column ``x`` of an
image row with its mirror column ``w - 1 - x`` and write the vector in the orthonormal basis

    sym  = (left + reversed right) / sqrt(2)   (and the centre column of an odd width, unchanged)
    anti = (left - reversed right) / sqrt(2)

(``left`` the first ``w // 2`` columns of every image row, ``reversed right`` the last ``w // 2`` read backwards).
The basis is orthonormal, so ``<q, b> = <q_sym, b_sym> + <q_anti, b_anti>``, and mirroring only negates ``anti``,
so ``<P q, b> = <q_sym, b_sym> - <q_anti, b_anti>``: two GEMMs over ``d / 2`` columns give both scores, half the
work of the direct way.

The feature cache stores the training features in this basis and the search scores queries in it; every score
of the search (the approximate GEMM and the exact float64 re-score) is defined on these float32 vectors, and the
mirror of a vector in the basis is exact (a sign), so a mirrored copy scores exactly as an unmirrored one. The
images themselves (alignment, structure scores, figures) come back through :func:`from_mirror_basis`, equal to
the image-order features to float32 rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: 1 / sqrt(2) in float32: both directions of the basis multiply by it.
INV_SQRT2 = float(np.float32(0.5**0.5))


def sym_columns(shape: tuple[int, int, int]) -> int:
    """Columns of the symmetric part of a vector of C x H x W feature images (it comes first)."""
    c, h, w = shape
    return c * h * (w - w // 2)


def _as_tensor(x: Any) -> Any:
    import torch

    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _parts(out: Any, shape: tuple[int, int, int]) -> tuple[Any, Any]:
    """(sym, anti) views of n x d rows in the basis, as n x (C H) x columns."""
    c, h, w = shape
    n, s = len(out), sym_columns(shape)
    return out[:, :s].view(n, c * h, w - w // 2), out[:, s:].view(n, c * h, w // 2)


def to_mirror_basis(x: Any, shape: tuple[int, int, int], out: Any | None = None) -> Any:
    """n x d feature vectors of C x H x W images (numpy or torch, image order) in the mirror basis.

    Returns a float32 torch tensor on ``x``'s device: ``out`` (n x d, contiguous) when given.
    """
    import torch

    t = _as_tensor(x)
    c, h, w = shape
    n, half = len(t), w // 2
    img = t.reshape(n, c * h, w)
    left, right = img[..., :half], torch.flip(img[..., w - half :], dims=(-1,))
    out = torch.empty((n, c * h * w), dtype=torch.float32, device=t.device) if out is None else out
    sym, anti = _parts(out, shape)
    torch.add(left, right, out=sym[..., :half])
    sym[..., :half].mul_(INV_SQRT2)
    torch.sub(left, right, out=anti)
    anti.mul_(INV_SQRT2)
    if w % 2:
        sym[..., half] = img[..., half]
    return out


def from_mirror_basis(x: Any, shape: tuple[int, int, int]) -> Any:
    """The image-order feature vectors (n x d float32 torch) of n x d vectors in the mirror basis."""
    import torch

    t = _as_tensor(x)
    c, h, w = shape
    n, half = len(t), w // 2
    sym, anti = _parts(t, shape)
    out = torch.empty((n, c * h, w), dtype=torch.float32, device=t.device)
    torch.add(sym[..., :half], anti, out=out[..., :half])
    out[..., :half].mul_(INV_SQRT2)
    right = (sym[..., :half] - anti).mul_(INV_SQRT2)
    out[..., w - half :] = torch.flip(right, dims=(-1,))
    if w % 2:
        out[..., half] = sym[..., half]
    return out.reshape(n, c * h * w)


def mirror_in_basis(x: np.ndarray, n_sym: int) -> np.ndarray:
    """The mirror images' vectors (n x d float32 numpy) from vectors in the basis: ``anti`` negated, exactly."""
    out = np.array(x, dtype=np.float32, copy=True)
    out[:, n_sym:] *= -1.0
    return out
