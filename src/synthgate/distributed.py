"""Running under ``torchrun``: rank and world from the environment, the process group, sharding and gathering.

synthgate scales out with PyTorch's own launcher and ``torch.distributed``; it has no scheduler of its own.
``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m synthgate <command> ...`` starts N
processes per machine; each reads its rank and the world size from the environment torchrun sets. A process
started without torchrun sees none of it and runs exactly as a single process, without importing torch here.

The process group uses gloo for CPU tensors and, when CUDA is present, NCCL for CUDA tensors
(``cpu:gloo,cuda:nccl``), so object collectives travel over gloo and gradients over NCCL. Each process uses the
GPU of its local rank.

Failures are agreed on, not left to hang: :func:`gather_checked` runs one rank's share, then every rank learns
whether any rank failed and raises that rank's error with its exit code (:class:`RankFailed`).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from synthgate.errors import ExitCode, SynthgateError, UsageError

logger = logging.getLogger(__name__)

T = TypeVar("T")

RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""torchrun sets these per process; any one of them means 'launched by torchrun'."""
RENDEZVOUS_VARS = ("MASTER_ADDR", "MASTER_PORT")
TIMEOUT_VAR = "SYNTHGATE_DIST_TIMEOUT_S"
"""Seconds a rank waits in a collective for the others (default 12 h: a rank may wait for another's models)."""
DEFAULT_TIMEOUT_S = 12 * 3600


@dataclass(frozen=True)
class Launch:
    """Where this process stands in the launch.

    Attributes:
        rank: global rank, 0 .. world_size - 1.
        world_size: number of processes over all machines.
        local_rank: rank on this machine (picks the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the outputs and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process: a process group is needed."""
        return self.world_size > 1


class RankFailed(SynthgateError):
    """Another rank failed; this rank stops with that rank's exit code and message."""

    def __init__(self, rank: int, exit_code: int, message: str):
        super().__init__(f"rank {rank}: {message}")
        self.rank = rank
        self.exit_code = ExitCode(exit_code)


def read_launch(environ: Mapping[str, str] | None = None) -> Launch:
    """Rank, world size and local rank from torchrun's environment; a single process without it.

    Raises:
        UsageError: only part of torchrun's environment is set, or its values are not valid.
    """
    env = os.environ if environ is None else environ
    present = [v for v in RANK_VARS if v in env]
    if not present:
        return Launch()
    missing = [v for v in (*RANK_VARS, *RENDEZVOUS_VARS) if v not in env]
    if missing:
        raise UsageError(
            f"incomplete torchrun environment: {', '.join(present)} set but {', '.join(missing)} not; launch "
            f"with 'torchrun --nproc-per-node N -m synthgate ...', or unset {', '.join(present)} for one process"
        )
    try:
        rank, world, local = (int(env[v]) for v in RANK_VARS)
    except ValueError:
        values = ", ".join(f"{v}={env[v]!r}" for v in RANK_VARS)
        raise UsageError(f"torchrun environment: {values} must be integers; launch with torchrun") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise UsageError(
            f"torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local} need "
            "0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0; launch with torchrun"
        )
    return Launch(rank, world, local)


def _timeout() -> _dt.timedelta:
    raw = os.environ.get(TIMEOUT_VAR, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise UsageError(f"{TIMEOUT_VAR}={raw!r}: give seconds, e.g. {DEFAULT_TIMEOUT_S}") from None
    if seconds <= 0:
        raise UsageError(f"{TIMEOUT_VAR}={raw!r}: must be > 0 seconds")
    return _dt.timedelta(seconds=seconds)


def init(launch: Launch) -> None:
    """Join the process group of ``launch`` (idempotent; nothing for a single process).

    gloo carries CPU tensors and objects; NCCL carries CUDA tensors when CUDA is available, and this process
    takes the GPU of its local rank.
    """
    if not launch.distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "gloo"
    if torch.cuda.is_available():
        if launch.local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK={launch.local_rank} but this machine has {torch.cuda.device_count()} GPU(s); "
                "start at most one process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(launch.local_rank)
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend, rank=launch.rank, world_size=launch.world_size, timeout=_timeout())
    atexit.register(shutdown)
    logger.info("rank %d of %d joined the process group (%s)", launch.rank, launch.world_size, backend)


def shutdown() -> None:
    """Leave the process group, if this process joined one (idempotent; run at exit).

    The ranks first meet at a barrier, so no rank closes its gloo connections while another still reads from them,
    then the group is destroyed and its objects collected while the interpreter is fully alive: gloo's worker
    threads torn down during interpreter finalization abort the process ("terminate called without an active
    exception", exit -6) although every command succeeded.
    """
    if not group_active():
        return
    import gc

    import torch.distributed as dist

    try:
        dist.barrier()
    except Exception as e:  # a peer already gone: leave anyway
        logger.debug("barrier at shutdown failed: %s", e)
    dist.destroy_process_group()
    gc.collect()


def group_active() -> bool:
    """A process group is up; never imports torch (a single process may not have loaded it)."""
    dist = sys.modules.get("torch.distributed")
    return bool(dist is not None and dist.is_available() and dist.is_initialized())


def rank() -> int:
    """This process's rank in the initialized process group; 0 without one."""
    if not group_active():
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def world_size() -> int:
    """Processes in the initialized process group; 1 without one."""
    if not group_active():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def is_main() -> bool:
    """Rank 0 of the process group (or a single process)."""
    return rank() == 0


def device_for(device: str, launch: Launch) -> str:
    """``cuda`` becomes this process's GPU ``cuda:LOCAL_RANK`` under a multi-process launch."""
    if device == "cuda" and launch.distributed:
        return f"cuda:{launch.local_rank}"
    return device


def shard(n: int, rank_: int | None = None, world: int | None = None) -> range:
    """The items ``0 .. n-1`` this rank owns: every ``world``-th from ``rank`` (balanced within one item)."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    return range(r, n, w)


def _failure(e: BaseException) -> tuple[int, str]:
    if isinstance(e, SynthgateError):
        return int(e.exit_code), str(e)
    if isinstance(e, KeyboardInterrupt):
        return 130, "interrupted"
    return int(ExitCode.UNEXPECTED), f"{type(e).__name__}: {e}"


def gather_checked(fn: Callable[[], T]) -> list[T]:
    """Run ``fn`` on every rank; return every rank's result in rank order, on every rank.

    If ``fn`` fails on any rank, every rank raises: the failing rank its own exception, the others
    :class:`RankFailed` with the lowest failing rank's exit code and message. No rank is left waiting. Without a
    process group this is ``[fn()]``.

    Results travel pickled through gloo (``all_gather_object``): keep them to what rank 0 needs.
    """
    if not group_active():
        return [fn()]
    import torch.distributed as dist

    mine: tuple[bool, Any]
    error: BaseException | None = None
    try:
        mine = (True, fn())
    except (Exception, KeyboardInterrupt) as e:
        error, mine = e, (False, _failure(e))
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    for r, (ok, value) in enumerate(everyone):
        if not ok:
            if error is not None:
                raise error
            raise RankFailed(r, *value)
    return [value for _, value in everyone]


def on_main(fn: Callable[[], T]) -> T | None:
    """Run ``fn`` on rank 0 only (writing outputs); every rank learns whether it failed. ``None`` elsewhere."""
    return gather_checked(lambda: fn() if is_main() else None)[0]


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (picklable objects)."""
    if not group_active():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


SHARDED_ATTR = "synthgate_sharded"


def sharded(fn: Callable[..., T]) -> Callable[..., T]:
    """Mark a CLI command that spreads its work over torchrun's ranks; other commands run on rank 0 alone."""
    setattr(fn, SHARDED_ATTR, True)
    return fn


__all__ = [
    "Launch",
    "RankFailed",
    "broadcast",
    "device_for",
    "gather_checked",
    "group_active",
    "init",
    "is_main",
    "on_main",
    "rank",
    "read_launch",
    "shard",
    "sharded",
    "shutdown",
    "world_size",
]
