"""Hugging Face ``datasets`` form of a release: parquet shards under ``data/`` that ``load_dataset`` reads.

Images are stored exactly (float32 ``Array3D``), labels as ``uint8`` ``Array2D``; the dataset card
(README.md, see :mod:`synthgate.release.card`) declares the ``configs`` so
``datasets.load_dataset(payload_dir)`` finds them.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from synthgate.release.payload import ReleaseImages
from synthgate.runtime import optional_import

SHARD_GLOB = "data/train-*.parquet"


def hf_features(r: ReleaseImages) -> Any:
    """The ``datasets.Features`` of a release."""
    datasets = optional_import("datasets")
    _, c, h, w = r.images.shape
    feats: dict[str, Any] = {
        "id": datasets.Value("string"),
        "seed": datasets.Value("int64"),
        "image": datasets.Array3D((c, h, w), "float32"),
    }
    if r.labels is not None:
        feats["label"] = datasets.Array2D((h, w), "uint8")
    return datasets.Features(feats)


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No ``datasets`` progress bars (they would write to the CLI's stderr) inside the block."""
    ds_logging = optional_import("datasets.utils.logging")
    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


def write_parquet_shards(r: ReleaseImages, payload: Path, rows_per_shard: int = 1000) -> tuple[Path, ...]:
    """Write ``data/train-XXXXX-of-YYYYY.parquet`` under ``payload`` and return their paths."""
    datasets = optional_import("datasets")
    feats = hf_features(r)
    n = len(r)
    n_shards = max(1, math.ceil(n / rows_per_shard))
    out = payload / "data"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_shards):
        sl = slice(k * rows_per_shard, min(n, (k + 1) * rows_per_shard))
        cols: dict[str, Any] = {
            "id": list(r.ids[sl]),
            "seed": [int(x) for x in r.seeds[sl]],
            "image": list(r.images[sl]),
        }
        if r.labels is not None:
            cols["label"] = list(r.labels[sl])
        path = out / f"train-{k:05d}-of-{n_shards:05d}.parquet"
        with quiet_datasets():
            datasets.Dataset.from_dict(cols, features=feats).to_parquet(str(path))
        paths.append(path)
    return tuple(paths)


def load_hf_payload(payload: Path) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None]:
    """Load the payload with ``datasets.load_dataset`` (a private cache) and return ids, images, labels."""
    datasets = optional_import("datasets")
    with tempfile.TemporaryDirectory(prefix="synthgate-hf-") as cache, quiet_datasets():
        ds = datasets.load_dataset(str(payload), split="train", cache_dir=cache)
        ds = ds.with_format("numpy")
        ids = tuple(str(x) for x in ds["id"])
        images = np.asarray(ds["image"], dtype=np.float32) if len(ds) else np.zeros((0, 0, 0, 0), np.float32)
        labels = np.asarray(ds["label"]) if "label" in ds.column_names else None
        del ds
    return ids, images, labels
