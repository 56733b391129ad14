"""The training index: every training image's features, computed once per audit and read by every later step.

One streaming pass over the training set (a memory-mapped store is read block by block) computes, per image, the
Pearson feature vector (:mod:`synthgate.audit.features`, stored in the mirror basis of :mod:`synthgate.audit.basis`,
so that one GEMM scores an image and its mirror), whether it can be matched at all (zero variance), its subject
code and its shift-invariant descriptor (:mod:`synthgate.audit.candidates`). The feature vectors are kept

* **in memory** (on the torch device, so a GPU search never copies them again) when they fit the cache budget;
* otherwise in a **temporary file** of float32 rows, written once and read back block by block through a private
  memory map that is never written: the search reads the kernel's cached pages in place (no copy into a buffer),
  and each block's pages leave the process's resident set once the next block is taken (bounded resident
  memory). The file is unlinked as soon as it is opened, so it disappears with the process whatever ends it
  (even SIGKILL): no temporary is ever left behind.

The search, the re-scoring and the alignment read the cache; the raw store is never read again.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from synthgate import distributed
from synthgate.audit.backend import Backend, norm_upper
from synthgate.audit.basis import from_mirror_basis, sym_columns, to_mirror_basis
from synthgate.audit.candidates import descriptor_images, descriptors
from synthgate.audit.features import check_finite, pearson_features
from synthgate.audit.search import DbBlock, TopK, search_topk
from synthgate.audit.windows import proposal_dtype, window_descriptors, window_layout
from synthgate.data.imageset import ImageSet
from synthgate.data.manifest import block_digests, remember_manifest

logger = logging.getLogger(__name__)
T = TypeVar("T")


class TrainingIndex(Protocol):
    """What the matching steps read of the training index: a :class:`FeatureCache`, or its sharded form over
    torchrun ranks (:class:`~synthgate.audit.shard.ShardedIndex`). Row numbers are the training set's."""

    @property
    def shape(self) -> tuple[int, int, int]: ...  # C' x H x W of a feature image

    @property
    def valid(self) -> np.ndarray: ...  # per training row: not zero-variance

    @property
    def groups(self) -> np.ndarray: ...  # per training row: subject code

    @property
    def descriptors(self) -> np.ndarray: ...  # per training row: shift-invariant descriptor

    @property
    def windows(self) -> Any: ...  # W x n x D window descriptors (torch, on ``device``), or None

    @property
    def device(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def where(self) -> str: ...

    def topk(self, queries: np.ndarray, k: int, backend: Backend, device: str,
             query_groups: np.ndarray | None = None, mirrors: bool = False) -> TopK: ...

    def rows(self, rows: np.ndarray) -> Any: ...  # image-order features


@dataclass
class FeatureCache:
    """Feature vectors of a training set (see the module docstring), in the mirror basis: :meth:`blocks` and
    :meth:`stored_rows` yield them so, :meth:`rows` in image order. Use as a context manager, or ``close()``.

    Attributes:
        shape: C' x H x W of a feature image (C' = compared channels).
        valid: n bools, false for zero-variance images (never returned by a search).
        groups: n subject codes (a query never gets a row of its own group, for the subject-disjoint null).
        descriptors: n x D float32 shift-invariant descriptors (n x 0 when not built).
        windows: W x n x D window descriptors (:mod:`synthgate.audit.windows`), a torch tensor on ``device``, or
            ``None`` when not built.
        norms: n upper bounds on the stored vectors' norms (the search's error bound needs them for every block).
        block_size: rows per block of :meth:`blocks`.
        where: ``"memory"`` or ``"file"``.
    """

    shape: tuple[int, int, int]
    valid: np.ndarray
    groups: np.ndarray
    descriptors: np.ndarray
    norms: np.ndarray
    block_size: int
    device: str = "cpu"
    windows: Any = None
    _memory: Any = None  # n x d float32 torch tensor on ``device``
    _fd: int | None = None
    _map: mmap.mmap | None = field(default=None, repr=False)  # the file's rows, mapped once it is written

    @property
    def n(self) -> int:
        return len(self.valid)

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    @property
    def where(self) -> str:
        return "memory" if self._memory is not None else "file"

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the features (the temporary file is already unlinked; closing frees its space)."""
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a block someone still holds keeps the map until it is dropped
                self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._memory = None

    def _map_file(self) -> None:
        """Map the written file. Private and never written: the rows are the kernel's cached pages, and a
        block's pages can be dropped from the resident set at any time (they are read back from the file)."""
        assert self._fd is not None
        if self.n * self.dim:
            self._map = mmap.mmap(self._fd, self.n * self.dim * 4, flags=mmap.MAP_PRIVATE,
                                  prot=mmap.PROT_READ | mmap.PROT_WRITE)

    @property
    def sym_columns(self) -> int:
        """Columns of the symmetric part of a stored vector (:func:`~synthgate.audit.basis.sym_columns`)."""
        return sym_columns(self.shape)

    def blocks(self) -> Iterator[DbBlock]:
        """The stored vectors as search blocks (:class:`~synthgate.audit.search.DbBlock`), in row order."""
        for start in range(0, self.n, self.block_size):
            stop = min(self.n, start + self.block_size)
            vec = self._memory[start:stop] if self._memory is not None else self._mapped_range(start, stop)
            try:
                yield DbBlock(start, vec, self.valid[start:stop], self.groups[start:stop], self.norms[start:stop])
            finally:
                if self._memory is None:
                    self._release(start, stop)

    def topk(self, queries: np.ndarray, k: int, backend: Backend, device: str,
             query_groups: np.ndarray | None = None, mirrors: bool = False) -> TopK:
        """Exact top-``k`` rows of each query, given in the mirror basis
        (:func:`~synthgate.audit.search.search_topk` over the cache's blocks, the exact scores gathered by row);
        with ``mirrors`` over every row and its mirror (entries ``2 j`` and ``2 j + 1``)."""
        return search_topk(queries, self.blocks, k, backend, device, query_groups=query_groups,
                           rows=self.stored_rows, mirror_at=self.sym_columns if mirrors else None)

    def rows(self, rows: np.ndarray) -> Any:
        """Image-order feature vectors of ``rows`` (in that order): a float32 torch tensor on the cache's device."""
        return from_mirror_basis(self.stored_rows(rows), self.shape)

    def stored_rows(self, rows: np.ndarray) -> Any:
        """The stored vectors (mirror basis) of ``rows`` (in that order): a torch tensor on the cache's device."""
        import torch

        rows = np.asarray(rows, dtype=np.int64)
        if self._memory is not None:
            return self._memory[torch.from_numpy(rows).to(self._memory.device)]
        out = np.empty((len(rows), self.dim), np.float32)
        order = np.argsort(rows, kind="stable")
        for j in order:  # ascending offsets: sequential reads where rows are close
            self._pread(out[j], int(rows[j]))
        return torch.from_numpy(out).to(self.device)

    def _mapped_range(self, start: int, stop: int) -> Any:
        """Rows ``start .. stop`` of the file as a torch tensor on the device (on the CPU, a view of the map)."""
        import torch

        assert self._map is not None
        rows = np.frombuffer(self._map, np.float32, (stop - start) * self.dim, start * self.dim * 4)
        return torch.from_numpy(rows.reshape(stop - start, self.dim)).to(self.device)

    def _release(self, start: int, stop: int) -> None:
        """Drop the mapped pages of rows ``start .. stop`` from the resident set (whole pages within the map)."""
        if self._map is None:
            return
        page = mmap.PAGESIZE
        first = start * self.dim * 4 // page * page
        last = min(len(self._map), -(-stop * self.dim * 4 // page) * page)
        self._map.madvise(mmap.MADV_DONTNEED, first, last - first)

    def _pread(self, out: np.ndarray, row: int) -> None:
        assert self._fd is not None
        view = out.reshape(-1).data.cast("B")
        offset = row * self.dim * 4
        got = 0
        while got < len(view):
            n = os.preadv(self._fd, [view[got:]], offset + got)
            if n <= 0:
                raise OSError(f"feature cache: short read at row {row}")
            got += n


def cache_fits(n: int, dim: int, budget: int) -> bool:
    """True when n float32 vectors of ``dim`` fit in ``budget`` bytes."""
    return n * dim * 4 <= budget


@dataclass(frozen=True)
class IndexSettings:
    """How a training index is built (every builder takes these: one process, sharded, replicated).

    Attributes:
        read_block: images per block read and featurised.
        cache_budget: bytes the features may take in memory (on ``device``); above it they go to a temporary file.
        device: torch device of an in-memory cache, of the blocks it yields and of the window descriptors.
        cache_dir: folder of the temporary file (default: the system temporary folder).
        search_block: rows per block of :meth:`FeatureCache.blocks` (default ``read_block``).
        descriptors: compute the shift-invariant descriptors (only the robust audit's proposals read them).
        windows: compute the window descriptors (only the partial score's proposals read them).
    """

    read_block: int
    cache_budget: int
    device: str = "cpu"
    cache_dir: str | os.PathLike[str] | None = None
    search_block: int | None = None
    descriptors: bool = True
    windows: bool = False


def build_feature_cache(
    train: ImageSet,
    channels: tuple[int, ...],
    groups: np.ndarray,
    settings: IndexSettings,
    set_name: str = "--train",
    progress: Callable[[int, int], None] | None = None,
) -> FeatureCache:
    """Read ``train`` once and build its :class:`FeatureCache`.

    Args:
        train: the training set (streamed in blocks of ``settings.read_block``).
        channels: the compared channels (:func:`~synthgate.audit.features.feature_channels`).
        groups: subject code of each training image.
        settings: block sizes, the cache's budget and place, and which descriptors to compute.
        set_name: the option the set came from, for error messages.
        progress: called with (done, total) images.

    Raises:
        InputError: an image holds NaN or Inf.
    """
    import torch

    c = len(channels)
    _, h, w = train.shape
    dim = c * h * w
    n = len(train)
    block_size, device = settings.read_block, settings.device
    in_memory = cache_fits(n, dim, settings.cache_budget)
    valid = np.zeros(n, bool)
    desc: list[np.ndarray] = []
    cache = FeatureCache(shape=(c, h, w), valid=valid, groups=np.asarray(groups, np.int64), descriptors=np.empty(0),
                         norms=np.zeros(n), block_size=settings.search_block or block_size, device=device)
    if settings.windows:
        n_windows, window_values = window_layout((c, h, w))
        cache.windows = torch.empty((n_windows, n, window_values), dtype=proposal_dtype(device), device=device)
    writer: _BackgroundWriter | None = None
    hasher: ThreadPoolExecutor | None = None
    try:
        if in_memory:
            cache._memory = torch.empty((n, dim), dtype=torch.float32, device=device)
        else:
            fd, path = tempfile.mkstemp(prefix=".synthgate-features-", dir=settings.cache_dir)
            os.unlink(path)  # the space is freed when the descriptor closes, whatever ends the process
            cache._fd = fd
            writer = _BackgroundWriter(fd, min(block_size, n), dim)
        scratch = np.empty((min(block_size, n), dim), np.float32)  # image-order features of a block
        digests: list[str] = []
        hasher = ThreadPoolExecutor(1, thread_name_prefix="synthgate-hash")  # shut down in ``finally``
        for start, block in train.iter_blocks(block_size):
            rows = slice(start, start + len(block))
            check_finite(block, train.ids, start, set_name)
            # content hashes bind the audit (data/manifest.py); hashlib releases the GIL, so the block is hashed
            # on another thread while it is featurised
            hashed = hasher.submit(block_digests, block)
            f = pearson_features(block, channels, train.label_channel, scratch[: len(block)])
            valid[rows] = f.valid
            if settings.descriptors or cache.windows is not None:  # the pooled images are both descriptors' input
                pooled = descriptor_images(torch.from_numpy(f.vectors).reshape(-1, c, h, w))
            desc.append(descriptors(pooled, (c, *pooled.shape[-2:])) if settings.descriptors
                        else np.zeros((len(block), 0), np.float32))
            if cache.windows is not None:
                cache.windows[:, rows] = window_descriptors(pooled, dtype=cache.windows.dtype).to(device)
            if writer is not None:
                stored = to_mirror_basis(f.vectors, (c, h, w), torch.from_numpy(writer.buffer(len(block))))
                writer.write(stored.numpy(), start * dim * 4)
            else:
                stored = to_mirror_basis(torch.from_numpy(f.vectors).to(device), (c, h, w), cache._memory[rows])
            cache.norms[rows] = norm_upper(stored)
            digests.extend(hashed.result())  # before the next block is read (a failure waits in ``finally``)
            if progress is not None:
                progress(start + len(block), n)
        if writer is not None:
            writer.close()
            cache._map_file()
    except BaseException:
        if writer is not None:
            writer.close(quiet=True)
        cache.close()
        raise
    finally:
        if hasher is not None:
            hasher.shutdown(wait=True)
    remember_manifest(train, digests)
    cache.descriptors = np.concatenate(desc) if desc else np.zeros((0, 1), np.float32)
    logger.info("feature cache: %d x %d float32 in %s", n, dim, cache.where)
    return cache


def build_on_every_rank(make: Callable[[], FeatureCache],
                        share: Callable[[FeatureCache], T]) -> tuple[FeatureCache, list[T]]:
    """``make()`` on every rank of the process group, and ``share(cache)`` of every rank's cache, gathered.

    Both run inside :func:`~synthgate.distributed.gather_checked`: a rank that cannot build its cache (a NaN image
    in its rows, a full temporary disk) stops every rank with its exit code, and what the other ranks built is
    closed, instead of leaving them waiting in the next collective. Without a process group it is one call.
    """
    built: list[FeatureCache] = []

    def build() -> T:
        built.append(make())
        return share(built[0])

    try:
        shared = distributed.gather_checked(build)
    except BaseException:
        for cache in built:
            cache.close()
        raise
    return built[0], shared


class _BackgroundWriter:
    """Writes feature blocks to the cache file on one thread while the next block is read and featurised.

    ``pwrite`` releases the GIL, so the kernel's copy and the disk's writeback overlap the hashing and the
    featurising instead of following them. Two buffers alternate: a block is featurised into one while the
    other is being written.
    """

    def __init__(self, fd: int, rows: int, dim: int) -> None:
        self.fd = fd
        self.buffers = [np.empty((rows, dim), np.float32) for _ in range(2)]
        self.turn = 0
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="synthgate-cache-write")
        self.pending: Future[None] | None = None

    def buffer(self, n: int) -> np.ndarray:
        """Where to featurise the next block (never the buffer being written)."""
        return self.buffers[self.turn][:n]

    def write(self, arr: np.ndarray, offset: int) -> None:
        """Start writing ``arr`` (the current buffer) at ``offset``, after the previous write completed."""
        self._wait()
        self.pending = self.pool.submit(_pwrite_all, self.fd, arr, offset)
        self.turn ^= 1

    def _wait(self) -> None:
        if self.pending is not None:
            done, self.pending = self.pending, None
            done.result()  # a failed write (a full disk) raises here

    def close(self, quiet: bool = False) -> None:
        """Wait for the last write (its error raised unless ``quiet``) and stop the thread."""
        try:
            self._wait()
        except OSError:
            if not quiet:
                raise
        finally:
            self.pool.shutdown(wait=True)
            self.buffers = []


def _pwrite_all(fd: int, arr: np.ndarray, offset: int) -> None:
    """Write all of ``arr`` at ``offset`` (a full disk raises OSError, the cache is then closed)."""
    view = np.ascontiguousarray(arr).reshape(-1).data.cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
