"""The slice store: synthgate's streamable, memory-mappable working format.

A store is a folder holding

* ``images.npy``: N x C x H x W, float32 or float16;
* ``index.csv``: one row per image: ``id, subject, slice_index, source, seed``;
* ``meta.json``: channel names, label channel, label map, normalisation, spacing, synthgate version.

Stores are written whole: into a temporary folder that is renamed at the end.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from synthgate import __version__
from synthgate.atomic import atomic_dir
from synthgate.data.imageset import ImageSet
from synthgate.data.labels import LabelMap
from synthgate.errors import InputError, UsageError
from synthgate.runtime import read_json

IMAGES = "images.npy"
INDEX = "index.csv"
META = "meta.json"
INDEX_COLUMNS = ("id", "subject", "slice_index", "source", "seed")
STORE_FORMAT = "synthgate-slice-store/1"


def is_store(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a folder holding a slice store."""
    p = Path(path)
    return p.is_dir() and (p / META).is_file() and (p / IMAGES).is_file()


class StoreDtype(StrEnum):
    """The dtypes a store's ``images.npy`` may have (float16 halves the size; exactness needs float32)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"


def check_dtype(dtype: StoreDtype | str) -> np.dtype[Any]:
    """The numpy dtype of a store dtype name.

    Raises:
        UsageError: not a :class:`StoreDtype`.
    """
    try:
        return np.dtype(str(StoreDtype(dtype)))
    except ValueError:
        raise UsageError(f"--dtype must be one of {', '.join(StoreDtype)}, got {dtype!r}") from None


def _write_meta(path: Path, meta: dict[str, Any], channels: tuple[str, ...], shape: tuple[int, ...],
                dtype: np.dtype[Any]) -> None:
    """Write ``meta.json``: ``meta`` (label channel and map included) plus the store's own fields."""
    full = dict(meta)
    full.update(
        {
            "format": STORE_FORMAT,
            "synthgate_version": __version__,
            "channels": list(channels),
            "shape": list(shape),
            "dtype": str(dtype),
        }
    )
    (path / META).write_text(json.dumps(full, indent=2) + "\n")


def _write_header(fh: BinaryIO, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
    """The ``.npy`` header of a C-order array of ``shape`` and ``dtype``; the data follows it."""
    np.lib.format.write_array_header_1_0(
        fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )


def _write_index(path: Path, rows: Iterable[tuple[str, str, int, str, int]]) -> None:
    """Write ``index.csv`` from ``(id, subject, slice_index, source, seed)`` rows."""
    with (path / INDEX).open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(INDEX_COLUMNS)
        w.writerows(rows)


def write_store(
    s: ImageSet, path: str | os.PathLike[str], dtype: StoreDtype | str = StoreDtype.FLOAT32, overwrite: bool = False,
    block_size: int = 256,
) -> Path:
    """Write ``s`` as a slice store at ``path`` (atomically) and return the path.

    Args:
        s: the set to write.
        path: target folder; must not exist unless ``overwrite``.
        dtype: ``"float32"`` or ``"float16"``.
        overwrite: replace an existing folder.
        block_size: images copied per block (bounds memory when ``s`` is memory-mapped).
    """
    np_dtype = check_dtype(dtype)
    with atomic_dir(path, overwrite=overwrite) as tmp:
        # plain file writes, never a writable memory map: a full disk is then an OSError, not a SIGBUS
        with (tmp / IMAGES).open("wb") as fh:
            _write_header(fh, np_dtype, tuple(s.images.shape))
            for _, block in s.iter_blocks(block_size):
                fh.write(np.ascontiguousarray(block, dtype=np_dtype).tobytes())
        _write_index(tmp, _index_rows(s))
        meta = {**s.meta, "label_channel": s.label_channel,
                "label_map": None if s.label_map is None else s.label_map.to_json()}
        _write_meta(tmp, meta, s.channels, s.images.shape, np_dtype)
    return Path(path)


def _index_rows(s: ImageSet) -> Iterable[tuple[str, str, int, str, int]]:
    n = len(s)
    slices = s.slice_index if s.slice_index is not None else np.full(n, -1)
    seeds = s.seeds if s.seeds is not None else np.full(n, -1)
    sources: Iterable[str] = s.sources if s.sources is not None else ("",) * n
    for row in zip(s.ids, s.subjects, slices, sources, seeds, strict=True):
        yield row[0], row[1], int(row[2]), row[3], int(row[4])


def read_store(path: str | os.PathLike[str], mmap: bool = True) -> ImageSet:
    """Read a slice store; with ``mmap`` the images stay on disk (read-only memory map).

    Raises:
        InputError: missing, corrupt or inconsistent files.
    """
    p = Path(path)
    if not is_store(p):
        raise InputError(
            f"{p} is not a slice store (needs {IMAGES} and {META}); write one with 'synthgate data ingest'"
        )
    meta = read_json(p / META, "rewrite the store")
    try:
        images = np.load(p / IMAGES, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{p / IMAGES}: corrupt or truncated ({e}); rewrite the store") from None
    if images.ndim != 4 or images.dtype not in (np.float32, np.float16):
        raise InputError(f"{p / IMAGES}: expected N x C x H x W float32/float16, got {images.shape} {images.dtype}")
    rows = _read_index(p / INDEX)
    if len(rows) != images.shape[0]:
        raise InputError(f"{p / INDEX}: {len(rows)} rows for {images.shape[0]} images; the store is incomplete")
    lm = meta.get("label_map")
    return ImageSet(
        images=images,
        ids=tuple(r["id"] for r in rows),
        subjects=tuple(r["subject"] for r in rows),
        channels=tuple(meta["channels"]),
        label_channel=meta.get("label_channel"),
        label_map=None if lm is None else LabelMap.from_json(lm),
        slice_index=np.array([int(r["slice_index"]) for r in rows], dtype=np.int64),
        seeds=np.array([int(r["seed"]) for r in rows], dtype=np.int64),
        sources=tuple(r["source"] for r in rows),
        meta={k: v for k, v in meta.items() if k not in ("channels", "label_channel", "label_map", "shape", "dtype")},
    )


def _read_index(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise InputError(f"{path} is missing; the store is incomplete")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(INDEX_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}: missing columns {sorted(missing)}")
        return list(reader)


class StoreWriter:
    """Write a store block by block without holding it in memory.

    Images are appended to a raw file; :meth:`close` writes the ``.npy`` header, the index and ``meta.json``.
    Call it inside :func:`synthgate.atomic.atomic_dir` so a failed write leaves nothing behind.
    """

    def __init__(self, path: Path, channels: tuple[str, ...], dtype: StoreDtype | str = StoreDtype.FLOAT32) -> None:
        self.dtype = check_dtype(dtype)
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=False)
        self.channels = channels
        self._raw = (self.path / "images.raw").open("wb")
        self._hw: tuple[int, int] | None = None
        self._n = 0
        self._rows: list[tuple[str, str, int, str, int]] = []

    def append(
        self, images: np.ndarray, ids: Iterable[str], subject: str | Iterable[str], slice_index: Iterable[int],
        source: str, seeds: Iterable[int] | None = None,
    ) -> None:
        """Append N x C x H x W ``images`` with their index rows."""
        if images.ndim != 4 or images.shape[1] != len(self.channels):
            raise InputError(f"expected N x {len(self.channels)} x H x W images, got {images.shape}")
        hw = (int(images.shape[2]), int(images.shape[3]))
        if self._hw is None:
            self._hw = hw
        elif hw != self._hw:
            raise InputError(f"image size {hw} differs from {self._hw} already in the store")
        ids = list(ids)
        subjects = [subject] * len(ids) if isinstance(subject, str) else list(subject)
        seeds = list(seeds) if seeds is not None else [-1] * len(ids)
        for row in zip(ids, subjects, slice_index, [source] * len(ids), seeds, strict=True):
            self._rows.append((row[0], row[1], int(row[2]), row[3], int(row[4])))
        self._raw.write(np.ascontiguousarray(images, dtype=self.dtype).tobytes())
        self._n += len(images)

    def discard(self) -> None:
        """Drop what was written: the store is not made."""
        self._raw.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self, meta: dict[str, Any], size: int) -> int:
        """Finish the store; ``size`` is H = W used when the store is empty. Returns the image count."""
        self._raw.close()
        h, w = self._hw or (size, size)
        shape = (self._n, len(self.channels), h, w)
        raw = self.path / "images.raw"
        with (self.path / IMAGES).open("wb") as fh:
            _write_header(fh, self.dtype, shape)
            with raw.open("rb") as src:
                while chunk := src.read(1 << 24):
                    fh.write(chunk)
        raw.unlink()
        _write_index(self.path, self._rows)
        _write_meta(self.path, meta, self.channels, shape, self.dtype)
        return self._n
