"""The audit's memory plan: block sizes and where the feature cache lives, from ``--max-memory``.

Peak resident memory stays within the budget plus the interpreter constant at every size: the training set
streams in read blocks, the cache is in memory only when it fits its share, and every other working set (a search
block with its score matrix, a query block, an alignment block) has a planned share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from synthgate.errors import InputError

#: Largest work array of an alignment block: below glibc's mmap threshold (32 MiB), work arrays are reused from
#: the heap; above it each is mapped and page-faulted afresh (28 M page faults, a third of a robust audit's time).
ALIGN_WORK_BYTES = 24 << 20


@dataclass(frozen=True)
class Plan:
    """Block sizes and where the feature cache lives, planned from the memory budget.

    The budget covers the feature cache when it is held in host memory (at most 45 %), a training block being
    read and featurised, a search block of cached features with its score matrix, a query block (features, in
    image order and in the mirror basis) and an alignment block (candidate spectra and correlations).
    """

    read_block: int
    search_block: int
    query_block: int
    align_block: int
    cache_budget: int

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def plan_memory(max_memory: int, n_channels: int, n_compared: int, h: int, w: int, n_warps: int, k: int,
                flips: bool, device: str = "cpu", n_train: int | None = None, held: tuple[int, int] = (0, 0)) -> Plan:
    """A :class:`Plan` that keeps the audit's working set within ``max_memory`` bytes (host) and, on CUDA, within
    70 % of the free device memory for the cache. When the cache of ``n_train`` images goes to a file, its share
    of the host budget goes to the working blocks instead.

    ``held`` is (host, device) bytes of per-row arrays the index keeps whatever the cache's place (the proposals'
    descriptors): they are taken from the budget first. On the CPU both are host memory.

    Raises:
        InputError: the held arrays would take more than half of ``max_memory``.
    """
    host_held, device_held = held
    if not device.startswith("cuda"):
        host_held, device_held = host_held + device_held, 0
    if host_held > max_memory // 2:
        raise InputError(f"--max-memory {max_memory >> 20}M is too small for the descriptors of the training images "
                         f"({host_held >> 20} MB, at most half the budget); raise --max-memory, or leave 'partial' out "
                         "of --scores")
    max_memory -= host_held
    d = n_compared * h * w
    m = 2 if flips else 1
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        cache_budget = max(0, int(0.7 * free) - device_held)
        work = 0.9 * max_memory
    else:
        cache_budget = int(0.45 * max_memory)
        in_file = n_train is not None and n_train * d * 4 > cache_budget
        work = (0.9 if in_file else 0.55) * max_memory
    # a training block: its image-order features, the two buffers of the cache writer and the work of featurising
    read_block = max(1, int(0.15 * work) // (4 * (n_channels * h * w + 4 * d)))
    # a query block: the images, their features, the same in the mirror basis, and a spare for alignment
    query_block = max(1, int(0.35 * work) // (4 * (n_channels * h * w + 3 * d)))
    # a block of cached features (+ bf16 copy) and the query x block scores: with mirrors, the two half products
    # with their partial sums, then the scores of both entries (a row and its mirror)
    search_block = max(1, int(0.3 * work) // (4 * d + 2 * d + (6 if flips else 2) * query_block * 4))
    cands = 2 * k * m + 1
    per_align = 8 * d * (cands + 2 * max(1, n_warps)) + 8 * h * w * (cands + 6 * max(1, n_warps))
    align_block = max(1, int(0.2 * work) // per_align)
    # and each of its work arrays (candidate spectra; warped views x refined candidates) below ALIGN_WORK_BYTES
    per_query = 8 * h * (w // 2 + 1) * max(cands * n_compared, max(1, n_warps) * 8)
    align_block = max(1, min(align_block, ALIGN_WORK_BYTES // per_query))
    return Plan(read_block, search_block, query_block, align_block, cache_budget)
