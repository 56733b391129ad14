"""``sample_generator``: a synthetic image set from a trained run, one seed per sample."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from synthgate import distributed
from synthgate.data.imageset import ImageSet
from synthgate.errors import UsageError
from synthgate.generators import runs
from synthgate.generators.registry import build_trainer
from synthgate.runtime import Progress


def sample_seeds(n: int, seed: int) -> np.ndarray:
    """``n`` distinct per-sample seeds derived from ``seed`` (int64, below 2**63)."""
    state = np.random.SeedSequence(seed).generate_state(2 * n + 8, dtype=np.uint64)
    seeds = np.asarray(list(dict.fromkeys((state >> np.uint64(1)).tolist()))[:n], dtype=np.int64)
    return seeds


def sample_generator(
    run_dir: str | os.PathLike[str],
    n: int,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 32,
    seeds: Sequence[int] | None = None,
    sample_steps: int | None = None,
    truncation: float | None = None,
    progress: Progress | None = None,
) -> ImageSet:
    """Generate ``n`` images from the EMA weights of a run's latest checkpoint.

    The set has the training set's channels, label channel and label map; labels are decoded to valid label
    values. Image i has id ``syn-{i:06d}``, subject ``synthetic``, source = the generator kind and seed
    ``seeds[i]``: ``sample_generator(run, 1, seeds=[seeds[i]])`` regenerates it (up to float rounding
    between batch sizes).

    Args:
        run_dir: a run directory written by :func:`~synthgate.generators.train_generator`.
        n: number of images (ignored when ``seeds`` is given).
        seed: derives the per-sample seeds.
        device: torch device.
        batch_size: images generated at once.
        seeds: explicit per-sample seeds (to regenerate given images).
        sample_steps: DDIM steps (diffusion; default the run's config).
        truncation: truncation psi (stylegan2; default the run's config).
        progress: called as ``progress("sample", done, total)`` after every batch (every round of batches over
            ranks).

    Under a torch.distributed process group the batches are spread over the ranks (batch ``b`` on rank
    ``b % world``) and every rank returns the whole set: the same images as one process with the same batch size.

    Raises:
        UsageError: ``n`` or ``batch_size`` below 1, or bad sampling options.
        InputError: ``run_dir`` is not a trained run.
    """
    if seeds is None:
        if n < 1:
            raise UsageError(f"--n must be >= 1, got {n}")
        seed_arr = sample_seeds(n, seed)
    else:
        seed_arr = np.asarray(list(seeds), dtype=np.int64)
        if seed_arr.size == 0:
            raise UsageError("seeds is empty; give at least one seed")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if sample_steps is not None and sample_steps < 1:
        raise UsageError(f"--steps must be >= 1, got {sample_steps}")
    if truncation is not None and not 0.0 <= truncation <= 1.0:
        raise UsageError(f"--truncation must be in [0, 1], got {truncation}")
    run = runs.open_run(run_dir)
    state = runs.load_checkpoint(run.path / runs.CHECKPOINT, device)
    trainer = build_trainer(run.config, run.data.shape, device)
    trainer.load_state_dict(state["trainer"])
    codec = run.data.codec
    total = len(seed_arr)
    out = np.empty((total, *run.data.shape), dtype=np.float32)
    starts = range(0, total, batch_size)
    world, me = distributed.world_size(), distributed.rank()
    done = 0
    for first in range(0, len(starts), world):  # one batch per rank per round, gathered in batch order
        mine = first + me

        def make(mine: int = mine) -> np.ndarray | None:
            if mine >= len(starts):
                return None
            chunk = seed_arr[starts[mine] : starts[mine] + batch_size].tolist()
            with torch.no_grad():
                x = trainer.sample(chunk, sample_steps=sample_steps, truncation=truncation)
            return codec.decode(x.float().cpu().numpy())

        for b, images in enumerate(distributed.gather_checked(make), start=first):
            if images is not None:
                out[starts[b] : starts[b] + len(images)] = images
                done += len(images)
        if progress is not None:
            progress("sample", done, total)
    kind = str(run.config.kind)
    generator_meta = {
        "kind": kind,
        "run": str(run.path.resolve()),
        "step": int(state["step"]),
        "seed": seed if seeds is None else None,
        "sample_steps": sample_steps,
        "truncation": truncation,
        "config": run.config.to_json(),
    }
    monitored = runs.read_monitor(run.path)
    if monitored is not None:  # which checkpoint the memorization monitor kept and why (into the provenance)
        generator_meta["monitor"] = {"stop_on": monitored["config"]["stop_on"], **(monitored["kept"] or {})}
    return ImageSet(
        images=out,
        ids=tuple(f"syn-{i:06d}" for i in range(total)),
        subjects=("synthetic",) * total,
        channels=run.data.channels,
        label_channel=run.data.label_channel,
        label_map=run.data.label_map,
        slice_index=np.full(total, -1, dtype=np.int64),
        seeds=seed_arr,
        sources=(kind,) * total,
        meta={**run.data.source, "generator": generator_meta},
    )
