"""Tiny seeded image sets for the audit tests: textured ellipses on a dark background, like brain slices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from synthgate.data.imageset import ImageSet
from tests.sets import as_set


def blob_images(n: int, size: int = 32, channels: int = 2, label: bool = True, seed: int = 0) -> np.ndarray:
    """n x (channels [+ label]) x size x size float32 images in [0, ~1.5], background 0."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    out = np.zeros((n, channels + int(label), size, size), np.float32)
    for i in range(n):
        cy, cx = size / 2 + rng.uniform(-1.5, 1.5, 2)
        ry, rx = size * rng.uniform(0.33, 0.4), size * rng.uniform(0.28, 0.36)
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        for c in range(channels):
            tex = ndi.gaussian_filter(rng.normal(size=(size, size)), 1.5)
            out[i, c] = mask * (0.6 + 2.0 * tex)
        if label:
            ty, tx = cy + rng.uniform(-4, 4), cx + rng.uniform(-4, 4)
            r = rng.uniform(2, 5)
            out[i, channels] = np.where((yy - ty) ** 2 + (xx - tx) ** 2 <= r * r, 2.0, 0.0)
    return out


def make_set(images: np.ndarray, prefix: str, per_subject: int = 4, label: bool = True) -> ImageSet:
    """The shared :func:`tests.sets.as_set`, four images per subject and no label map (the audit needs none)."""
    return as_set(images, prefix, per_subject, label, label_map=None)


@pytest.fixture
def train_set() -> ImageSet:
    return make_set(blob_images(24, seed=1), "tr")


@pytest.fixture
def holdout_set() -> ImageSet:
    return make_set(blob_images(24, seed=2), "ho")


@pytest.fixture
def unseen_set() -> ImageSet:
    return make_set(blob_images(8, seed=3), "un")
