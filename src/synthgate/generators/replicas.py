"""How the ranks of a data-parallel run keep one model: averaged gradients, checkpoints through rank 0.

Every rank holds the same weights, optimiser state and EMA weights: gradients (and running buffers) are averaged
over the ranks before each optimiser step (:func:`average_gradients`, what ``DistributedDataParallel`` does after
backward). Before rank 0 writes a checkpoint, every rank's state is fingerprinted and compared, so a run
whose replicas drifted apart stops instead of saving one rank's view; the fingerprints go into the checkpoint.
On resume rank 0 reads the checkpoint and broadcasts it, so only rank 0 needs the run directory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import torch

from synthgate import distributed
from synthgate.generators import runs


def average_gradients(params: Iterable[Any]) -> None:
    """Average the ``.grad`` of ``params`` over the ranks in one all-reduce: DDP's gradient step.

    Called between ``backward()`` and the optimiser step (and before gradient clipping), as StyleGAN2-ADA does:
    unlike the ``DistributedDataParallel`` wrapper it allows several forward passes per step and R1's
    ``autograd.grad``. Parameters without a gradient (unused this step, the same on every rank) are left alone.
    Without a process group it does nothing.
    """
    if not distributed.group_active():
        return
    import torch
    import torch.distributed as dist

    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in with_grad])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for p, g in zip(with_grad, flat.split([p.numel() for p in with_grad]), strict=True):
        p.grad.copy_(g.view_as(p.grad))


def average_buffers(module: Any) -> None:
    """Average a module's floating-point buffers over the ranks (running statistics such as StyleGAN2's
    ``w_avg``, updated from each rank's own batch); for equal batches this is the update of the global batch."""
    if not distributed.group_active():
        return
    import torch
    import torch.distributed as dist

    bufs = [b for b in module.buffers() if torch.is_floating_point(b)]
    if not bufs:
        return
    flat = torch.cat([b.reshape(-1).float() for b in bufs])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for b, v in zip(bufs, flat.split([b.numel() for b in bufs]), strict=True):
        b.copy_(v.view_as(b))


def average_values(values: Mapping[str, float]) -> dict[str, float]:
    """The mean of each named number over the ranks (losses for the log), in one all-reduce."""
    if not distributed.group_active() or not values:
        return dict(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(list(values.values()), dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(values, (t / dist.get_world_size()).tolist(), strict=True))


def any_rank(flag: bool) -> bool:
    """``True`` on every rank when ``flag`` is true on any rank (e.g. a time limit reached)."""
    if not distributed.group_active():
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def fingerprint(state: Any) -> str:
    """SHA-256 of every tensor and number in a (nested) state dict, in key order."""
    h = hashlib.sha256()

    def visit(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            h.update(x.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, Mapping):
            for k in sorted(x, key=str):
                h.update(str(k).encode())
                visit(x[k])
        elif isinstance(x, (list, tuple)):
            for v in x:
                visit(v)
        else:
            h.update(repr(x).encode())

    visit(state)
    return h.hexdigest()


def check(trainer_state: dict[str, Any], step: int) -> list[str]:
    """Every rank's fingerprint of its state (none for a single process), after checking that they agree.

    Raises:
        RuntimeError: the ranks' states differ (on every rank).
    """
    world = distributed.world_size()
    if world == 1:
        return []
    prints = distributed.gather_checked(lambda: fingerprint(trainer_state))
    if len(set(prints)) > 1:
        raise RuntimeError(f"the {world} ranks hold different weights at step {step}; the run cannot go on")
    return prints


def save(out: Path, trainer_state: dict[str, Any], step: int, position: int) -> None:
    """Rank 0 writes the checkpoint once every rank is known to hold the same state.

    Args:
        out: the run directory.
        trainer_state: the trainer's state dict.
        step: optimiser steps done.
        position: training images consumed from the epoch stream (over all ranks).

    Raises:
        RuntimeError: the ranks' states differ (on every rank).
    """
    state = {
        "step": step,
        "position": position,
        "world_size": distributed.world_size(),
        "replica_sha256": check(trainer_state, step),
        "trainer": trainer_state,
    }
    distributed.on_main(lambda: runs.save_checkpoint(out / runs.CHECKPOINT, state))


def load(out: Path) -> dict[str, Any]:
    """The checkpoint of ``out`` on every rank (read by rank 0, on the CPU).

    Raises:
        InputError: missing or unreadable checkpoint (on every rank).
    """
    state = distributed.on_main(lambda: runs.load_checkpoint(out / runs.CHECKPOINT, "cpu"))
    return cast(dict[str, Any], distributed.broadcast(state))
