"""Read images block by block, or row by row, without growing the process's resident memory.

Slicing a memory map keeps every page it touched mapped (and counted in the resident set size) until the map
is dropped. For a C-contiguous memory-mapped array (a slice store), images are read with plain file reads into
fresh buffers instead, so only the current block is resident; other arrays are sliced and copied.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import numpy as np

from synthgate.errors import InputError


def _file_backed(arr: np.ndarray) -> tuple[str, int] | None:
    """(file name, byte offset of row 0) of a C-contiguous memory-mapped array or slice of one, else None."""
    if not (isinstance(arr, np.memmap) and arr.filename is not None and arr.flags.c_contiguous):
        return None
    # a slice keeps its parent's ``offset``: its own is the parent's plus the distance between the data pointers
    root = arr
    while isinstance(root.base, np.memmap):
        root = root.base
    delta = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return str(arr.filename), int(root.offset) + int(delta)


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
    raw = np.empty((min(block_size, n), *shape), dtype=dtype)  # one read buffer, reused for every block
    with open(name, "rb") as fh:
        for start in range(0, n, block_size):
            count = min(block_size, n - start)
            fh.seek(offset + start * row * dtype.itemsize)
            _read_exactly(fh, raw[:count], name)
            yield start, to_float32(raw[:count])


def to_float32(block: np.ndarray) -> np.ndarray:
    """A new float32 array holding ``block``. float16 is widened by torch (vectorised, multi-threaded): numpy's
    float16 conversion runs at about a tenth of the speed of reading the store."""
    if block.dtype == np.float16:
        import torch

        return torch.from_numpy(np.ascontiguousarray(block)).float().numpy()
    return np.array(block, dtype=np.float32, copy=True)


def _read_exactly(fh: io.BufferedReader, out: np.ndarray, name: str) -> None:
    view = memoryview(out.reshape(-1).view(np.uint8).data)
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])
        if not n:
            raise InputError(f"{name}: the file ends before the rows its header announces; write the store again")
        got += n


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
    raw = np.empty((len(rows), *shape), dtype=dtype)
    with open(name, "rb") as fh:
        for j, r in enumerate(rows):
            fh.seek(offset + int(r) * row * dtype.itemsize)
            _read_exactly(fh, raw[j], name)
    return to_float32(raw)
