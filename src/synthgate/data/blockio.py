"""Read images block by block, or row by row, without growing the process's resident memory.

Slicing a memory map keeps every page it touched mapped (and counted in the resident set size) until the map
is dropped. For a C-contiguous memory-mapped array (a slice store), images are read with plain file reads into
fresh buffers instead, so only the current block is resident; other arrays are sliced and copied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def _file_backed(arr: np.ndarray) -> tuple[str, int] | None:
    """(file name, byte offset of row 0) of a C-contiguous memory-mapped array, else None."""
    if not (isinstance(arr, np.memmap) and arr.filename is not None and arr.flags.c_contiguous):
        return None
    # np.load returns the memmap itself; a slice of it shares the buffer with a different start
    if arr.base is not None and isinstance(arr.base, np.memmap):
        return None
    return str(arr.filename), int(arr.offset)


def read_blocks(images: np.ndarray, block_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, block)`` float32 copies of at most ``block_size`` rows of ``images`` each."""
    n = len(images)
    fb = _file_backed(images)
    if fb is None:
        for start in range(0, n, block_size):
            yield start, np.array(images[start : start + block_size], dtype=np.float32, copy=True)
        return
    name, offset = fb
    shape = images.shape[1:]
    row = int(np.prod(shape))
    dtype = images.dtype
    with open(name, "rb") as fh:
        for start in range(0, n, block_size):
            count = min(block_size, n - start)
            fh.seek(offset + start * row * dtype.itemsize)
            block = np.fromfile(fh, dtype=dtype, count=count * row).reshape(count, *shape)
            yield start, block.astype(np.float32, copy=False)


def read_rows(images: np.ndarray, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """The rows ``rows`` of ``images`` (in that order) as a new float32 array."""
    rows = np.asarray(rows, dtype=np.int64)
    shape = images.shape[1:]
    fb = _file_backed(images)
    if fb is None:
        return np.asarray(images[rows], dtype=np.float32)
    name, offset = fb
    row = int(np.prod(shape))
    dtype = images.dtype
    out = np.empty((len(rows), *shape), dtype=np.float32)
    with open(name, "rb") as fh:
        for j, r in enumerate(rows):
            fh.seek(offset + int(r) * row * dtype.itemsize)
            out[j] = np.fromfile(fh, dtype=dtype, count=row).reshape(shape)
    return out
