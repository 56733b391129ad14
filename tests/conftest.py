"""Shared fixtures: tiny seeded data made in tmp paths; never the real data in ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def phantom_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-subject phantom cohort of 32 x 32 x 24 volumes (BraTS-2021 style NIfTI)."""
    from synthgate.data.phantom import write_phantom_cohort

    return write_phantom_cohort(tmp_path_factory.mktemp("cohort") / "phantom", 5, seed=3, shape=(32, 32, 24))


@pytest.fixture(scope="session")
def phantom_stores(phantom_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train / holdout / test stores ingested from the phantom cohort at 32 px."""
    from synthgate.data.ingest import IngestConfig, ingest_cohort

    out = tmp_path_factory.mktemp("stores") / "stores"
    ingest_cohort(phantom_cohort, out, IngestConfig(size=32))
    return out


def make_set(n: int = 6, c: int = 3, h: int = 16, w: int = 16, seed: int = 0, label: bool = True):  # type: ignore[no-untyped-def]
    """A tiny random set; the last channel is a brats2021 label when ``label``."""
    from synthgate.data.imageset import ImageSet
    from synthgate.data.labels import BRATS2021

    rng = np.random.default_rng(seed)
    images = rng.random((n, c, h, w), dtype=np.float32)
    if label:
        images[:, -1] = rng.choice([0, 1, 2, 4], size=(n, h, w))
    return ImageSet(
        images=images,
        ids=tuple(f"img{i:03d}" for i in range(n)),
        subjects=tuple(f"s{i // 2}" for i in range(n)),
        channels=tuple(f"c{i}" for i in range(c - 1)) + (("label",) if label else (f"c{c - 1}",)),
        label_channel=c - 1 if label else None,
        label_map=BRATS2021 if label else None,
    )
