"""Tiny seeded labelled image sets and fast settings for the segmentation tests."""

from __future__ import annotations

import numpy as np

from synthgate.data.imageset import ImageSet
from synthgate.data.labels import BRATS2021, LabelMap
from synthgate.segment.train import SegmentTrainConfig
from synthgate.segment.utility import UtilityConfig


def make_tumour_set(
    n_subjects: int = 3,
    slices: int = 6,
    size: int = 32,
    seed: int = 0,
    label_map: LabelMap = BRATS2021,
    prefix: str = "sub",
    noise: float = 0.02,
) -> ImageSet:
    """A trivially separable cohort: each region has its own intensity in channel 0 (channel 1 is a
    smooth distractor), so a network can read the labels off the pixels."""
    rng = np.random.default_rng(seed)
    core, oedema, enhancing = 1, 2, 4  # the same values in the brats2021 and brats2013 conventions
    n = n_subjects * slices
    images = np.zeros((n, 3, size, size), dtype=np.float32)
    yy, xx = np.mgrid[:size, :size]
    subjects, slice_index = [], []
    for i in range(n):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        r = rng.uniform(size * 0.2, size * 0.3)
        d = np.hypot(yy - cy, xx - cx)
        lab = np.zeros((size, size))
        lab[d < r] = oedema
        lab[d < 0.7 * r] = core
        lab[d < 0.4 * r] = enhancing
        if i % slices == 0:
            lab[:] = 0  # one tumour-free slice per subject
        brain = np.hypot(yy - size / 2, xx - size / 2) < size * 0.45
        intensity = {0: 0.2, oedema: 0.5, core: 0.75, enhancing: 1.0}
        img = np.where(brain, 0.2, 0.0)
        for value, level in intensity.items():
            if value:
                img = np.where(lab == value, level, img)
        images[i, 0] = img + noise * rng.standard_normal((size, size))
        images[i, 1] = brain * np.sin(xx / 5.0 + i) * 0.3 + 0.3
        images[i, 2] = lab
        subjects.append(f"{prefix}{i // slices:02d}")
        slice_index.append(i % slices)
    return ImageSet(
        images=images,
        ids=tuple(f"{prefix}-{i:03d}" for i in range(n)),
        subjects=tuple(subjects),
        channels=("t1c", "flair", "label"),
        label_channel=2,
        label_map=label_map,
        slice_index=np.array(slice_index),
    )


def separable_config(**overrides: object) -> UtilityConfig:
    """Settings that learn the trivially separable sets in seconds."""
    train = {"epochs": 25, "batch_size": 4, "width": 8, "lr": 1e-2, "augment": False}
    top = {k: overrides.pop(k) for k in ("seeds", "mode") if k in overrides}
    train.update(overrides)
    return UtilityConfig(train=SegmentTrainConfig(**train), **top)  # type: ignore[arg-type]
