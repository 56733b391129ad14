"""Training batches, read from the store ahead of the step that uses them.

A step's batch is a function of the run's seed and the step number alone (:func:`step_rows`), so a background
thread can read the next steps' batches while the device computes, and a resumed run reads the batches an
uninterrupted run would have. The thread reads a block of steps at a time with one sorted pass over the store
(reads release the GIL), encodes the images for the generator, and on CUDA hands over pinned memory so the
copy to the device is asynchronous.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import TracebackType

import numpy as np
import torch

from synthgate.data.imageset import ImageSet
from synthgate.generators.codec import ChannelCodec


def step_rows(seed: int, step: int, n: int, batch_size: int) -> np.ndarray:
    """Positions (in ``0..n-1``) of the images in step ``step``'s batch: uniform, with replacement."""
    return np.random.default_rng([seed % 2**64, step]).integers(0, n, batch_size)  # a negative seed too


class BatchPrefetcher:
    """The encoded batches of steps ``start``, ``start + 1``, ... on ``device``, read ``depth`` blocks ahead.

    Use as a context manager (the reader thread stops on exit) and call :meth:`next` once per step.

    Args:
        data: the training set.
        chosen: the rows of ``data`` trained on.
        codec: turns images into the generator's range.
        batch_size: images per step.
        seed: the run's seed.
        start: the first step.
        device: where batches go.
        block: steps read per pass over the store.
        depth: blocks held ready.
    """

    def __init__(
        self,
        data: ImageSet,
        chosen: np.ndarray,
        codec: ChannelCodec,
        batch_size: int,
        seed: int,
        start: int,
        device: str | torch.device,
        block: int = 4,
        depth: int = 2,
    ) -> None:
        self.data, self.chosen, self.codec = data, chosen, codec
        self.batch_size, self.seed, self.block = batch_size, seed, block
        self.device = torch.device(device)
        self._pin = self.device.type == "cuda"
        self._queue: queue.Queue[list[torch.Tensor] | BaseException] = queue.Queue(maxsize=depth)
        self._ready: Iterator[torch.Tensor] = iter(())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(start,), name="synthgate-batches", daemon=True)
        self._thread.start()

    def read_block(self, first: int) -> list[torch.Tensor]:
        """The host batches of steps ``first .. first + block - 1``, read in one sorted pass."""
        idx = [step_rows(self.seed, s, len(self.chosen), self.batch_size) for s in range(first, first + self.block)]
        rows, inverse = np.unique(self.chosen[np.concatenate(idx)], return_inverse=True)
        images = self.codec.encode(self.data.read_rows(rows))[inverse]
        out = [torch.from_numpy(b) for b in np.split(images, self.block)]
        return [b.pin_memory() for b in out] if self._pin else out

    def _put(self, item: list[torch.Tensor] | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, start: int) -> None:
        first = start
        try:
            while self._put(self.read_block(first)):
                first += self.block
        except BaseException as e:  # handed to the training thread, raised there
            self._put(e)

    def next(self) -> torch.Tensor:
        """The next step's batch on the device (the copy from pinned memory is asynchronous on CUDA)."""
        batch = next(self._ready, None)
        if batch is None:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            self._ready = iter(item)
            batch = next(self._ready)
        return batch.to(self.device, non_blocking=self._pin)

    def close(self) -> None:
        """Stop the reader thread."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> BatchPrefetcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
