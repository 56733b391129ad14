"""Checkpoints of a run trained on one or several ranks: written and read through rank 0.

Every rank holds the same weights, optimiser state and EMA weights (gradients are averaged before each
optimiser step). Before rank 0 writes a checkpoint, every rank's state is fingerprinted and compared, so a run
whose replicas drifted apart stops instead of saving one rank's view; the fingerprints go into the checkpoint.
On resume rank 0 reads the checkpoint and broadcasts it, so only rank 0 needs the run directory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch

from synthgate import distributed
from synthgate.generators import runs


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
