"""Hugging Face ``datasets`` form of a release: parquet shards under ``data/`` that ``load_dataset`` reads.

Images are stored exactly (float32 ``Array3D``), labels as ``uint8`` ``Array2D``, and a ``preview`` column
(``datasets.Image``, a PNG of one sequence with the label overlaid) gives the Hub's viewer something to show
beside the exact arrays. The dataset card (README.md, see :mod:`synthgate.release.card`) declares the
``configs`` so ``datasets.load_dataset(payload_dir)`` finds them, and its ``dataset_info`` comes from the
:class:`datasets.DatasetInfo` that :func:`write_parquet_shards` returns.

``datasets``' numpy format returns every integer array as int64 (``NumpyFormatter``), so ``label`` read with
``with_format("numpy")`` is int64 holding the uint8 values; :func:`load_hf_payload` casts it back.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from synthgate.release.payload import ReleaseImages
from synthgate.runtime import optional_import

SHARD_GLOB = "data/train-*.parquet"
PREVIEW_PREFERENCE = ("flair", "t2", "t1c", "t1")  # the sequence shown in the preview, first present wins
_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180))
PREVIEW_ALPHA = 0.45


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
    feats["preview"] = datasets.Image()
    return datasets.Features(feats)


def preview_channel(channels: tuple[str, ...]) -> int:
    """Index of the sequence the preview shows (FLAIR when present: the tumour and oedema are brightest)."""
    for name in PREVIEW_PREFERENCE:
        if name in channels:
            return channels.index(name)
    return 0


def preview_rgb(image: np.ndarray, label: np.ndarray | None, label_values: tuple[int, ...]) -> np.ndarray:
    """H x W x 3 uint8: ``image`` (H x W) windowed to its 0.5-99.5 % range in grey, each non-zero label value
    in its own colour (:data:`_PALETTE`, in the order of ``label_values``) blended at :data:`PREVIEW_ALPHA`."""
    lo, hi = (float(v) for v in np.percentile(image, (0.5, 99.5)))
    grey = np.clip((image - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if label is not None:
        for k, v in enumerate(x for x in label_values if x != 0):
            m = label == v
            rgb[m] = (1 - PREVIEW_ALPHA) * rgb[m] + PREVIEW_ALPHA * np.asarray(_PALETTE[k % len(_PALETTE)])
    return np.rint(rgb).astype(np.uint8)


def _preview_png(r: ReleaseImages, i: int, channel: int) -> bytes:
    from PIL import Image

    values = r.label_map.values if r.label_map is not None else tuple(range(256))
    rgb = preview_rgb(r.images[i, channel], None if r.labels is None else r.labels[i], values)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


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


def write_parquet_shards(r: ReleaseImages, payload: Path, rows_per_shard: int = 1000) -> Any:
    """Write ``data/train-XXXXX-of-YYYYY.parquet`` under ``payload``.

    Returns:
        The :class:`datasets.DatasetInfo` of what was written: features, the ``train`` split with its
        ``num_examples`` and ``num_bytes`` (Arrow), ``dataset_size`` and ``download_size`` (the parquet bytes).
    """
    datasets = optional_import("datasets")
    feats = hf_features(r)
    n = len(r)
    n_shards = max(1, math.ceil(n / rows_per_shard))
    out = payload / "data"
    out.mkdir(parents=True, exist_ok=True)
    channel = preview_channel(r.channels)
    num_bytes = download = 0
    for k in range(n_shards):
        sl = slice(k * rows_per_shard, min(n, (k + 1) * rows_per_shard))
        cols: dict[str, Any] = {
            "id": list(r.ids[sl]),
            "seed": [int(x) for x in r.seeds[sl]],
            "image": list(r.images[sl]),
        }
        if r.labels is not None:
            cols["label"] = list(r.labels[sl])
        cols["preview"] = [{"bytes": _preview_png(r, i, channel), "path": None} for i in range(n)[sl]]
        path = out / f"train-{k:05d}-of-{n_shards:05d}.parquet"
        with quiet_datasets():
            ds = datasets.Dataset.from_dict(cols, features=feats)
            ds.to_parquet(str(path))
        num_bytes += int(ds.data.nbytes)
        download += path.stat().st_size
    splits = datasets.SplitDict()
    splits.add(datasets.SplitInfo(name="train", num_bytes=num_bytes, num_examples=n))
    return datasets.DatasetInfo(features=feats, splits=splits, dataset_size=num_bytes, download_size=download)


def load_hf_payload(payload: Path) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None]:
    """Load the payload with ``datasets.load_dataset`` (a private cache) and return ids, images, labels."""
    datasets = optional_import("datasets")
    with tempfile.TemporaryDirectory(prefix="synthgate-hf-") as cache, quiet_datasets():
        ds = datasets.load_dataset(str(payload), split="train", cache_dir=cache)
        ds = ds.with_format("numpy")
        ids = tuple(str(x) for x in ds["id"])
        images = np.asarray(ds["image"], dtype=np.float32) if len(ds) else np.zeros((0, 0, 0, 0), np.float32)
        labels = np.asarray(ds["label"]) if "label" in ds.column_names else None
        if labels is not None and labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError(f"label values {labels.min()}..{labels.max()} do not fit the uint8 feature")
        labels = None if labels is None else labels.astype(np.uint8)
        del ds
    return ids, images, labels
