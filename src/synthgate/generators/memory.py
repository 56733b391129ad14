"""Will a training batch fit in memory? Estimate before allocating, so a too-large ``--batch-size`` is refused
with the size that fits instead of the process being killed by the kernel's OOM killer with no message.

The estimate comes from two probe steps (1 and 2 images) of a throw-away trainer on the CPU: the peak bytes of
tensors autograd keeps for the backward pass grow linearly with the batch; parameters, gradients and optimizer
state are fixed. Random state is restored afterwards, so a run is the same with or without the probe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from pathlib import Path
from typing import Any

import torch

from synthgate.errors import UsageError
from synthgate.generators.config import TrainConfig
from synthgate.generators.registry import build_trainer

logger = logging.getLogger(__name__)

SAFETY = 0.8  # share of the available memory a step may plan to use
MAX_RATIO = 256  # probed only when batch x image bytes x this could come near the budget (measured: 60-200)
ACTIVATION_FACTOR = 2.0  # temporaries not saved for backward (outputs, gradients of activations)


class _LiveBytes:
    """Track the peak bytes of tensors saved for backward (released when autograd frees them)."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def _free(self, n: int) -> None:
        self.live -= n

    def pack(self, t: torch.Tensor) -> Any:
        n = t.numel() * t.element_size()
        self.live += n
        self.peak = max(self.peak, self.live)
        holder = _Holder([t])
        weakref.finalize(holder, self._free, n)
        return holder

    @staticmethod
    def unpack(h: Any) -> torch.Tensor:
        return h.items[0]


class _Holder:
    __slots__ = ("__weakref__", "items")

    def __init__(self, items: list[torch.Tensor]) -> None:
        self.items = items


def _probe(cfg: TrainConfig, shape: tuple[int, int, int], n: int) -> tuple[int, int]:
    """(state bytes, peak saved-activation bytes) of one CPU training step on ``n`` random images."""
    trainer = build_trainer(cfg, shape, "cpu")
    batch = torch.rand((n, *shape)) * 2 - 1
    live = _LiveBytes()
    with torch.autograd.graph.saved_tensors_hooks(live.pack, live.unpack):
        trainer.step(batch, torch.Generator().manual_seed(0), 1)
    state = sum(t.numel() * t.element_size() for t in _tensors(trainer.state_dict()))
    return state, live.peak


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _tensors(v)]
    return []


def step_memory(cfg: TrainConfig, shape: tuple[int, int, int]) -> tuple[int, int]:
    """(fixed bytes, bytes per image) of one training step, from probe steps of 1 and 2 images."""
    with torch.random.fork_rng(devices=[]):
        state, one = _probe(cfg, shape, 1)
        _, two = _probe(cfg, shape, 2)
    per_image = max(two - one, 1) * ACTIVATION_FACTOR + 3 * 4 * shape[0] * shape[1] * shape[2]  # + batch copies
    fixed = int(1.5 * state + max(one - (two - one), 0) * ACTIVATION_FACTOR)  # + gradients of the parameters
    return fixed, int(per_image)


def available_memory(device: str) -> int | None:
    """Free bytes on ``device``: CUDA's free memory, or the host's available memory within a cgroup limit."""
    if str(device).startswith("cuda"):
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    v1 = "/sys/fs/cgroup/memory/memory."
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         (v1 + "limit_in_bytes", v1 + "usage_in_bytes")):
        try:
            text = Path(limit).read_text().strip()
            if text != "max" and int(text) < (1 << 60):
                found.append(int(text) - int(Path(usage).read_text().strip()))
        except (OSError, ValueError):
            continue
    if not found and hasattr(os, "sysconf"):
        with contextlib.suppress(ValueError, OSError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return min(found) if found else None


def _gb(n: float) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= (1 << 30) else f"{n / (1 << 20):.0f} MB"


def check_batch_fits(cfg: TrainConfig, shape: tuple[int, int, int], device: str,
                     available: int | None = None) -> None:
    """Refuse a batch size whose training step would not fit in the memory available on ``device``.

    A batch far below the budget is let through without probing (the probe costs two small training steps).

    Raises:
        UsageError: naming the batch size that fits (exit 2).
    """
    avail = available_memory(device) if available is None else available
    if avail is None:
        return
    image = 4 * shape[0] * shape[1] * shape[2]
    if cfg.batch_size * image * MAX_RATIO <= 0.1 * avail:  # far below the budget: skip the probe steps
        return
    fixed, per_image = step_memory(cfg, shape)
    need = fixed + cfg.batch_size * per_image
    budget = SAFETY * avail
    logger.info("batch %d: about %s needed of %s available on %s", cfg.batch_size, _gb(need), _gb(avail), device)
    if need <= budget:
        return
    fit = int((budget - fixed) // per_image)
    hint = f"use --batch-size {fit} or less" if fit >= 1 else "even --batch-size 1 does not fit: use a smaller preset"
    raise UsageError(
        f"--batch-size {cfg.batch_size}: a training step needs about {_gb(need)} ({_gb(per_image)} per image) but "
        f"{_gb(avail)} is available on {device}; {hint}"
    )
