"""Tiny seeded image sets for every test: one :func:`make_set`, the image patterns it can fill a set with, and
:func:`as_set` for images a test made itself. Never the real data in ../shared."""

from __future__ import annotations

from typing import Literal

import numpy as np

from synthgate.data.imageset import ImageSet
from synthgate.data.labels import BRATS2021, LabelMap


def as_set(
    images: np.ndarray,
    prefix: str = "img",
    per_subject: int = 2,
    label: bool = True,
    label_map: LabelMap | None = BRATS2021,
) -> ImageSet:
    """``images`` (N x C x H x W) as a set: ids ``{prefix}000``..., subjects ``{prefix}s0``... of ``per_subject``
    images each, channels ``c0``... and, when ``label``, a last channel ``label`` with ``label_map``."""
    n, c = images.shape[:2]
    return ImageSet(
        images=images,
        ids=tuple(f"{prefix}{i:03d}" for i in range(n)),
        subjects=tuple(f"{prefix}s{i // per_subject}" for i in range(n)),
        channels=(*(f"c{i}" for i in range(c - int(label))), *(("label",) if label else ())),
        label_channel=c - 1 if label else None,
        label_map=label_map if label else None,
    )


def random_images(n: int, channels: int, size: int, seed: int, label: bool = True) -> np.ndarray:
    """Uniform noise in [0, 1); the last channel holds random brats2021 label values when ``label``."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, channels, size, size), dtype=np.float32)
    if label:
        images[:, -1] = rng.choice([0, 1, 2, 4], size=(n, size, size))
    return images


def brain_images(n: int, channels: int, size: int, seed: int) -> np.ndarray:
    """A bright disc ("brain") with a labelled blob ("tumour") that moves per image: learnable by a generator.

    ``channels - 1`` image channels in [0, 1] and a last label channel with values 0, 1, 2, 4.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / (size - 1) * 2 - 1
    images = np.zeros((n, channels, size, size), dtype=np.float32)
    for i in range(n):
        cy, cx = rng.uniform(-0.3, 0.3, 2)
        brain = (yy**2 + xx**2) < 0.7
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        blob, core = d2 < 0.08, d2 < 0.03
        for c in range(channels - 1):
            images[i, c] = brain * (0.4 + 0.1 * c) + blob * 0.3
        lab = np.zeros((size, size), dtype=np.float32)
        lab[blob] = 2
        lab[core] = 1
        lab[core & (yy > cy)] = 4
        images[i, -1] = lab
    return images


def make_set(
    n: int = 6,
    channels: int = 3,
    size: int = 16,
    *,
    pattern: Literal["random", "brain"] = "random",
    seed: int = 0,
    label: bool = True,
    prefix: str = "img",
    per_subject: int = 2,
) -> ImageSet:
    """``n`` seeded images of ``channels`` x ``size`` x ``size`` (the last channel a brats2021 label when
    ``label``): random noise, or ``brain`` discs with tumour blobs a generator can learn."""
    if pattern == "brain":
        if not label:
            raise ValueError("the brain pattern always has a label channel")
        images = brain_images(n, channels, size, seed)
    else:
        images = random_images(n, channels, size, seed, label)
    return as_set(images, prefix, per_subject, label)
