"""The candidate-score backends of the exact search: how each computes approximate inner products, and a proven
bound on how far they can be from the exact (float64) score.

* ``torch`` (default): fp32 GEMMs summed over chunks of :data:`CHUNK` columns, on the CPU (through numpy's BLAS)
  or CUDA (TF32 off).
* ``faiss``: the inner-product kernel of ``IndexFlatIP`` (fp32, any order), CPU.
* ``bf16``: torch bf16 GEMM (AVX-512 BF16 or tensor cores), a looser bound.

Why chunks: a dot product of length ``d`` accumulated in fp32 in any order errs by up to ``gamma_d |q| |b|``
(``gamma_n = n u / (1 - n u)``, ``u = 2^-24``), 0.004 at ``d = 65,536``: wider than the gaps between neighbour
scores of brain slices. Summing fp32 GEMMs over chunks of ``c`` columns bounds the error by
``gamma_{c + d / c} |q| |b|`` instead (6.5e-5 at that ``d``) for a few percent of extra work.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import numpy as np

from synthgate.errors import UsageError

U_FP32 = 2.0**-24
U_BF16 = 2.0**-8
#: Columns per fp32 partial product (see the module docstring).
CHUNK = 1024


class Backend(StrEnum):
    """Candidate-search backends (the result does not depend on the choice)."""

    TORCH = "torch"  # torch fp32 GEMM in column chunks (CPU or CUDA); the tightest bound
    FAISS = "faiss"  # faiss IndexFlatIP, fp32, CPU
    BF16 = "bf16"  # torch bf16 GEMM (CPU with AVX-512 BF16, or CUDA tensor cores); a looser bound


def resolve_backend(backend: Backend | str, device: str) -> Backend:
    """The backend that runs on ``device``: the one place the choice is made.

    faiss-cpu has no accelerator path, so on CUDA the faiss backend runs as the torch one.

    Raises:
        UsageError: an unknown backend name.
    """
    try:
        be = Backend(backend)
    except ValueError:
        raise UsageError(f"--backend must be one of {[b.value for b in Backend]}, got {backend!r}") from None
    if be is Backend.FAISS and device != "cpu":
        return Backend.TORCH
    return be


def norm_upper(x: Any) -> np.ndarray:
    """Upper bounds on the Euclidean norms of the rows of a float32 array or tensor (float64 numpy).

    The norms are computed in fp32 (no float64 copy of the rows: 5x faster) and widened by their worst-case
    error: a sum of ``d`` non-negative fp32 terms in any order is within ``gamma_d`` of the exact sum, and the
    squares and the square root round a few more times. At ``d = 65,536`` the bound is 0.2 % above the norm,
    which widens the search's error bound (proportional to the norms) by as much.
    """
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    d = max(1, int(np.prod(t.shape[1:])))
    n = torch.linalg.vector_norm(t.float(), dim=tuple(range(1, t.dim())) or None).double().cpu().numpy()
    # + 1e-30: squares below fp32's smallest normal may flush to zero
    return (n * math.sqrt(1.0 / (1.0 - gamma(d))) + 1e-30) * (1.0 + 4 * U_FP32)


def gamma(n: int, u: float = U_FP32) -> float:
    """``n u / (1 - n u)``: the relative error bound of n roundings."""
    return n * u / (1.0 - n * u)


def error_bound(backend: Backend, d: int, q_norm: np.ndarray, db_norm_max: float,
                q_round_err: np.ndarray | None = None, db_round_err_max: float = 0.0,
                halves: bool = False) -> np.ndarray:
    """Per-query bound on |approximate score - exact score|.

    torch (fp32, chunks of ``c`` columns summed one after another): ``gamma_{c + ceil(d / c)} |q| |b|``.
    faiss (fp32, any order over all ``d``): ``gamma_d |q| |b|``. bf16: inputs rounded to bf16 (errors ``e_q``
    measured per query, ``e_b`` per row), products accumulated in fp32 in any order, output rounded to bf16:
    ``|e_q| |b| + |q~| |e_b| + |q~| |b~| (gamma_d + 2^-8 (1 + gamma_d))``.

    ``halves``: the score is the sum (or difference) of two products over complementary columns (the mirror
    basis, :mod:`synthgate.audit.basis`). Each product's bound holds with its own columns' norms, whose products
    sum to at most ``|q| |b|`` (Cauchy-Schwarz), and the fp32 addition rounds once more: ``+ u |q~| |b~|``.
    """
    extra: np.ndarray | float = 0.0
    if halves:
        q_t = q_norm if q_round_err is None else q_norm + q_round_err
        b_t = db_norm_max + db_round_err_max
        extra = U_FP32 * (1.0 + gamma(d)) * q_t * b_t
    if backend is Backend.BF16:
        assert q_round_err is not None
        g = gamma(d)
        q_t = q_norm + q_round_err  # |q~| <= |q| + |e_q|
        b_t = db_norm_max + db_round_err_max
        return (q_round_err * db_norm_max + q_t * db_round_err_max
                + q_t * b_t * (g + U_BF16 * (1.0 + g)) + extra) * (1.0 + 1e-6)
    if backend is Backend.TORCH:
        c = min(CHUNK, d)
        g = gamma(c + math.ceil(d / c))
    else:
        g = gamma(d)
    return (g * q_norm * db_norm_max + extra) * (1.0 + 1e-6)


def chunked_scores(q: Any, b: Any) -> Any:
    """fp32 ``q @ b.T`` summed over column chunks of :data:`CHUNK` (see the error bound).

    On the CPU the chunks go to numpy's BLAS (OpenBLAS): about 10 % faster than torch's CPU matmul on these
    shapes. Either computes each chunk in fp32, which is all the bound assumes.
    """
    import torch

    d = q.shape[1]
    if d <= CHUNK:
        return q @ b.T
    if q.device.type == "cpu":
        qn, bn = q.numpy(), b.numpy()
        acc = np.zeros((len(qn), len(bn)), np.float32)
        tmp = np.empty_like(acc)
        for c in range(0, d, CHUNK):
            np.matmul(qn[:, c : c + CHUNK], bn[:, c : c + CHUNK].T, out=tmp)
            acc += tmp
        return torch.from_numpy(acc)
    out = torch.zeros(q.shape[0], b.shape[0], dtype=torch.float32, device=q.device)
    part = torch.empty_like(out)
    for c in range(0, d, CHUNK):
        torch.mm(q[:, c : c + CHUNK], b[:, c : c + CHUNK].T, out=part)
        out += part
    return out
