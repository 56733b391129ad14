"""Read a set's images block by block, or row by row, without growing the process's resident memory.

``ImageSet.iter_blocks`` slices the memory map; pages it touches stay mapped (and count in the resident set
size) until the map is dropped. For a store larger than ``--max-memory`` the audit reads memory-mapped images
with plain file reads into fresh buffers instead, so only the current block is resident.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from synthgate.data.imageset import ImageSet


def _file_backed(arr: np.ndarray) -> tuple[str, int] | None:
    """(file name, byte offset of row 0) of a C-contiguous memory-mapped array, else None."""
    if isinstance(arr, np.memmap) and arr.filename is not None and arr.flags.c_contiguous:
        base = arr
        # np.load returns the memmap itself; a slice of it shares the buffer with a different start
        offset = int(arr.offset)
        if base.base is not None and isinstance(base.base, np.memmap):
            return None
        return str(arr.filename), offset
    return None


def iter_image_blocks(s: ImageSet, block_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, block)`` float32 copies of at most ``block_size`` images each."""
    fb = _file_backed(s.images)
    if fb is None:
        yield from s.iter_blocks(block_size)
        return
    name, offset = fb
    n = len(s)
    row = int(np.prod(s.images.shape[1:]))
    dtype = s.images.dtype
    with open(name, "rb") as fh:
        for start in range(0, n, max(1, block_size)):
            count = min(block_size, n - start)
            fh.seek(offset + start * row * dtype.itemsize)
            block = np.fromfile(fh, dtype=dtype, count=count * row).reshape(count, *s.images.shape[1:])
            yield start, block.astype(np.float32, copy=False)


def read_rows(s: ImageSet, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """The images at ``rows`` (in that order) as a float32 array, read without touching the memory map."""
    rows = np.asarray(rows, dtype=np.int64)
    shape = s.images.shape[1:]
    fb = _file_backed(s.images)
    if fb is None:
        return np.asarray(s.images[rows], dtype=np.float32)
    name, offset = fb
    row = int(np.prod(shape))
    dtype = s.images.dtype
    out = np.empty((len(rows), *shape), dtype=np.float32)
    with open(name, "rb") as fh:
        for j, r in enumerate(rows):
            fh.seek(offset + int(r) * row * dtype.itemsize)
            out[j] = np.fromfile(fh, dtype=dtype, count=row).reshape(shape)
    return out
