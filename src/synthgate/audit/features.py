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
    block: np.ndarray, channels: Sequence[int], label_channel: int | None = None,
    work_dtype: type[np.floating[Any]] = np.float64,
) -> Features:
    """Pearson feature vectors of ``block``.

    Args:
        block: n x C x H x W finite images.
        channels: channels to use (see :func:`feature_channels`).
        label_channel: the label channel (treated as described in the module docstring), or ``None``.
        work_dtype: precision of the centring and scaling (float64 for the search; float32 is enough for the
            alignment's FFT correlations).

    Returns:
        :class:`Features` with n x (len(channels) * H * W) float32 vectors.
    """
    n = block.shape[0]
    hw = int(np.prod(block.shape[2:]))
    x = np.asarray(block[:, list(channels)], dtype=work_dtype).reshape(n, len(channels), hw)
    mean = x.mean(axis=2, keepdims=True)
    x = x - mean
    norm = np.sqrt(np.einsum("ncp,ncp->nc", x, x))
    scale = np.maximum(1.0, np.abs(mean[..., 0]))
    const = norm <= ZERO_VARIANCE_RTOL * scale * np.sqrt(hw)
    x = x / np.where(const, 1.0, norm)[..., None]
    is_label = np.array([c == label_channel for c in channels])
    # constant label channel -> unit constant vector; constant image channel -> invalid image
    label_const = const & is_label[None, :]
    x[label_const] = 1.0 / np.sqrt(hw)
    valid = ~(const & ~is_label[None, :]).any(axis=1)
    x[~valid] = 0.0
    x /= np.sqrt(len(channels))
    return Features(vectors=x.reshape(n, -1).astype(np.float32, copy=False), valid=valid)


def hflip(block: np.ndarray) -> np.ndarray:
    """Mirror n x C x H x W images left-right (the StyleGAN mirror augmentation)."""
    return np.ascontiguousarray(block[..., ::-1])
