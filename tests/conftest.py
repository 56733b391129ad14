"""Shared fixtures: tiny seeded data made in tmp paths; never the real data in ../shared."""

from __future__ import annotations

from pathlib import Path

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
