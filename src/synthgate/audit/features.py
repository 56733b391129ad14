"""Pearson features: images as vectors whose inner product is the channel-averaged Pearson correlation.

Each channel of an image is mean-centred and scaled to unit norm, then divided by ``sqrt(n_channels)``; the
concatenation of the channels is the feature vector. For two images ``a`` and ``b``::

    <f(a), f(b)> = mean over channels c of pearson_r(a[c], b[c])

so an exact top-k inner-product search over features is an exact top-k search over Pearson's r.

A channel with zero variance has no Pearson correlation. An *image* channel with zero variance makes the whole
image ``zero-variance``: it is reported as its own category and never enters a search (its vector would be zero,
or NaN, and faiss silently ignores NaN vectors). The *label* channel of a tumour-free slice is constant; when the
label is included it is represented by the unit constant vector, which is orthogonal to every centred vector, so
two tumour-free labels agree (r = 1) and a constant label against a tumour label contributes 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthgate.errors import InputError

#: A channel is constant when its standard deviation is at most this times max(1, |mean|).
ZERO_VARIANCE_RTOL = 1e-6
#: Bytes of float32 work per batch of images featurised together: below glibc's mmap threshold (32 MiB), so the
#: work arrays are reused rather than mapped and page-faulted afresh for every block of a large set.
WORK_BYTES = 16 << 20


@dataclass(frozen=True)
class Features:
    """Feature vectors of a block of images.

    Attributes:
        vectors: n x d float32; rows of zero-variance images are all zero.
        valid: n bools, false for zero-variance images.
    """

    vectors: np.ndarray
    valid: np.ndarray


def feature_channels(n_channels: int, label_channel: int | None, include_label: bool) -> tuple[int, ...]:
    """The channels that enter the similarity, in order."""
    return tuple(c for c in range(n_channels) if include_label or c != label_channel)


def check_finite(block: np.ndarray, ids: Sequence[str], start: int, set_name: str) -> None:
    """Raise :class:`InputError` naming the first image of ``block`` that holds NaN or Inf.

    Args:
        block: n x C x H x W images.
        ids: ids of the whole set; ``block`` starts at ``start``.
        start: index of the first image of ``block`` in the set.
        set_name: the option the set came from, for the message.
    """
    finite = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InputError(
            f"{set_name}: image {ids[start + bad]!r} holds NaN/Inf values; fix or remove it before the audit"
        )


def pearson_features(
    block: np.ndarray, channels: Sequence[int], label_channel: int | None = None, out: np.ndarray | None = None,
) -> Features:
    """Pearson feature vectors of ``block``.

    Centring and scaling run in float32 on torch (multi-threaded, one pass per step; torch sums in cascade, so
    the means and norms err by about 1e-7 relative, below the float32 rounding of the result); the vectors are
    the float32 result. Every score of the audit is defined on these vectors, so the fast search and the
    brute-force reference agree exactly. Images are featurised a few at a time (their work stays below
    :data:`WORK_BYTES`), written straight into the result; the channels of a float32 block are read in place.

    Args:
        block: n x C x H x W finite images (numpy, any float dtype).
        channels: channels to use (see :func:`feature_channels`).
        label_channel: the label channel (treated as described in the module docstring), or ``None``.
        out: n x (len(channels) * H * W) C-contiguous float32 array to write the vectors into (e.g. the rows of
            an in-memory feature cache); a new array when ``None``.

    Returns:
        :class:`Features` with n x (len(channels) * H * W) float32 vectors (``out`` when given).
    """
    import torch

    n = block.shape[0]
    hw = int(np.prod(block.shape[2:]))
    vectors = np.empty((n, len(channels) * hw), np.float32) if out is None else out
    assert vectors.shape == (n, len(channels) * hw) and vectors.dtype == np.float32 and vectors.flags.c_contiguous
    dest = torch.from_numpy(vectors).view(n, len(channels), hw)
    valid = np.empty(n, bool)
    rows = max(1, WORK_BYTES // (4 * len(channels) * hw))
    for a in range(0, n, rows):
        valid[a : a + rows] = _featurise(block[a : a + rows], channels, label_channel, dest[a : a + rows])
    return Features(vectors=vectors, valid=valid)


def _featurise(block: np.ndarray, channels: Sequence[int], label_channel: int | None, out: Any) -> np.ndarray:
    """Write the features of a few images into ``out`` (torch, n x C' x HW); return which images are valid."""
    import torch

    n, k = block.shape[0], len(channels)
    hw = out.shape[-1]
    first = channels[0] if k else 0
    if block.dtype == np.float32 and block.flags.writeable and list(channels) == list(range(first, first + k)):
        x = torch.from_numpy(block)[:, first : first + k].reshape(n, k, hw)  # a view of the block: no copy
    else:
        x = torch.from_numpy(np.ascontiguousarray(block[:, list(channels)], dtype=np.float32)).reshape(n, k, hw)
    mean = x.mean(dim=2)
    torch.sub(x, mean[..., None], out=out)
    norm = torch.linalg.vector_norm(out, dim=2)
    scale = torch.clamp(mean.abs(), min=1.0)
    const = norm <= ZERO_VARIANCE_RTOL * scale * np.sqrt(hw)
    is_label = torch.tensor([c == label_channel for c in channels], dtype=torch.bool)
    label_const = const & is_label[None, :]
    valid = ~(const & ~is_label[None, :]).any(dim=1)
    inv = torch.where(const, 0.0, 1.0 / (norm.double() * np.sqrt(len(channels))))
    out *= inv.to(torch.float32)[..., None]
    if bool(label_const.any()):
        # a constant label channel becomes the unit constant vector
        out[label_const] = float(1.0 / np.sqrt(hw * len(channels)))
    out[~valid] = 0.0
    return valid.numpy()


def hflip(block: np.ndarray) -> np.ndarray:
    """Mirror n x C x H x W images left-right (the StyleGAN mirror augmentation)."""
    return np.ascontiguousarray(block[..., ::-1])


def renormalise(x: Any) -> Any:
    """Re-centre and re-scale feature images (torch, ... x C x H x W) after a warp, as :func:`pearson_features`
    does (a channel that became constant stays zero)."""
    import torch

    c = x.shape[-3]
    flat = x.flatten(-2)
    flat = flat - flat.mean(dim=-1, keepdim=True)
    norm = torch.linalg.vector_norm(flat, dim=-1, keepdim=True)
    flat = flat / (norm * float(np.sqrt(c))).clamp_min(1e-30)
    return flat.reshape(x.shape)
