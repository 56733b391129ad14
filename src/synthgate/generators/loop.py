"""``train_generator``: the loop every generator kind shares: run directory, batches, checkpoints, loss log,
sample grids, resume. What differs between kinds (the step, EMA, sampling) is in :mod:`synthgate.generators.trainers`.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from synthgate.atomic import atomic_dir
from synthgate.data.imageset import ImageSet, require_nonempty
from synthgate.errors import InputError, UsageError
from synthgate.generators import runs
from synthgate.generators.batches import BatchPrefetcher
from synthgate.generators.config import GeneratorKind, TrainConfig
from synthgate.generators.grid import save_grid
from synthgate.generators.memory import check_batch_fits
from synthgate.generators.registry import build_trainer, generator_spec
from synthgate.generators.runs import DataSpec
from synthgate.generators.trainers import Trainer
from synthgate.runtime import Progress

if TYPE_CHECKING:
    from synthgate.generators.monitor import MemorizationMonitor, MonitorConfig

logger = logging.getLogger(__name__)

GRID_SEEDS = tuple(range(8))


@dataclass(frozen=True)
class TrainResult:
    """What a training call did.

    Attributes:
        run_dir: the run directory.
        kind: the generator kind.
        steps: steps completed in the run so far (including steps before a resume).
        start_step: the step this call started from (0 unless resumed).
        final_loss: the last step's main loss (diffusion: MSE; stylegan2: generator loss).
        losses: every loss of the last step.
        images_per_s: training throughput of this call.
        elapsed_s: wall time of this call.
        stopped_by: ``"steps"`` (the config's), ``"max_steps"``, ``"max_time"`` or ``"memorization"`` (the
            monitor's ``stop_on``; the checkpoint is then the kept one, see :mod:`synthgate.generators.monitor`).
        checkpoint: the run's checkpoint.
        grids: sample grids written by this call.
        n_train: images trained on.
    """

    run_dir: Path
    kind: GeneratorKind
    steps: int
    start_step: int
    final_loss: float
    losses: dict[str, float]
    images_per_s: float
    elapsed_s: float
    stopped_by: str
    checkpoint: Path
    grids: tuple[Path, ...] = field(default_factory=tuple)
    n_train: int = 0


def _data_spec(data: ImageSet, name: str) -> DataSpec:
    if data.label_channel is not None and data.label_map is None:
        raise InputError(f"{name} has a label channel but no label map; ingest it with 'synthgate data ingest'")
    _, h, w = data.shape
    return DataSpec(
        channels=data.channels,
        label_channel=data.label_channel,
        label_map=data.label_map,
        height=h,
        width=w,
        source={k: data.meta[k] for k in ("normalisation", "size", "spacing", "orientation", "split")
                if k in data.meta},
    )


def _check_size(cfg: TrainConfig, spec: DataSpec, name: str) -> None:
    problem = generator_spec(cfg.kind).size_problem(cfg.model, spec.height, spec.width)
    if problem is not None:
        raise InputError(f"{name}: images of {spec.height}x{spec.width} but {problem}")


def _choose(n: int, cfg: TrainConfig) -> np.ndarray:
    if cfg.max_images is None or cfg.max_images >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(cfg.seed).choice(n, size=cfg.max_images, replace=False))


def _resolve_config(out: Path, cfg: TrainConfig | None, spec: DataSpec, resume: bool) -> TrainConfig:
    """The run's configuration; on resume the run's own, with only ``steps`` changeable (to extend it)."""
    if not resume:
        if cfg is None:
            raise UsageError("train_generator needs a config (e.g. generators.preset('diffusion')) unless resuming")
        _check_size(cfg, spec, "the training data")
        return cfg
    run = runs.open_run(out)
    if run.data.shape != spec.shape or run.data.channels != spec.channels:
        raise InputError(
            f"--resume: {out} was trained on {run.data.channels} {run.data.height}x{run.data.width} but "
            f"the data has {spec.channels} {spec.height}x{spec.width}; resume with the same --data"
        )
    if cfg is None or cfg == run.config:
        return run.config
    if replace(cfg, steps=run.config.steps) != run.config:
        raise UsageError(
            f"--resume: {out} continues with its own config.json; only --steps (to extend the run) may change"
        )
    done = int(runs.load_checkpoint(out / runs.CHECKPOINT, "cpu")["step"])
    if cfg.steps < done:
        raise UsageError(f"--steps {cfg.steps}: {out} has already done {done} steps; give --steps >= {done}")
    runs.write_json(out / runs.CONFIG, cfg.to_json())  # the run now ends at the new total
    return cfg


def _start_run(work: Path, cfg: TrainConfig, spec: DataSpec, data: ImageSet, chosen: np.ndarray,
               device: str) -> None:
    """Write a new run's config, data spec, training-image list and versions into ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    runs.write_json(work / runs.CONFIG, cfg.to_json())
    runs.write_json(work / runs.DATA, spec.to_json())
    runs.write_training_images(work / runs.TRAIN_IMAGES, [data.ids[i] for i in chosen],
                               [data.subjects[i] for i in chosen])
    runs.write_json(work / runs.VERSIONS, runs.versions(device))


def train_generator(
    config: TrainConfig | None,
    data: ImageSet,
    out_dir: str | os.PathLike[str],
    device: str = "cpu",
    max_steps: int | None = None,
    max_time: float | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    overwrite: bool = False,
    monitor: MonitorConfig | None = None,
    holdout: ImageSet | None = None,
) -> TrainResult:
    """Train a generator on ``data`` and write a run directory (see :mod:`synthgate.generators.runs`).

    Args:
        config: the run's configuration (its ``kind`` says which generator). On resume the run's own
            ``config.json`` applies (pass ``None``), or a config that differs from it only in ``steps``, which
            extends (or shortens, down to the steps done) the run.
        data: the training set (images in [0, 1], integer labels in the label channel).
        out_dir: the run directory.
        device: torch device to train on.
        max_steps: stop once this many steps (in total, resumed steps included) are done.
        max_time: stop after this many seconds of this call.
        resume: continue from ``out_dir/checkpoint.pt``; ends in the same state as an uninterrupted run.
        progress: called as ``progress("train", step, total)`` after every step (losses: ``log.jsonl``).
        overwrite: replace an existing run directory; the old run stays until the new one is complete.
        monitor: audit fixed-seed batches for memorization while training (:mod:`synthgate.generators.monitor`).
        holdout: real images of subjects not in ``data``; calibrates the monitor's audit.

    Returns:
        A :class:`TrainResult`.

    Raises:
        UsageError: no config without ``resume``, bad limits, or ``out_dir`` exists without
            ``resume``/``overwrite``.
        InputError: empty data, a size the generator cannot take, or labels outside the label map.
    """
    if config is None and not resume:
        raise UsageError("train_generator needs a config (e.g. generators.preset('diffusion')) unless resuming")
    if max_steps is not None and max_steps < 1:
        raise UsageError(f"--max-steps must be >= 1, got {max_steps}")
    if max_time is not None and max_time <= 0:
        raise UsageError(f"--max-time must be > 0 seconds, got {max_time}")
    if monitor is not None and holdout is None:
        raise UsageError("the memorization monitor needs a holdout set (--monitor HOLDOUT)")
    require_nonempty(data, "the training data")
    spec = _data_spec(data, "the training data")
    out = Path(out_dir)
    replacing = not resume and out.exists() and any(out.iterdir())
    if replacing and not overwrite:
        raise UsageError(f"{out} already exists; pass --resume to continue it, --overwrite, or another --out")
    cfg = _resolve_config(out, config, spec, resume)
    # every check on the input before the run folder is touched: a failed --overwrite loses nothing
    chosen = _choose(len(data), cfg)
    for start_block in range(0, len(chosen), 256):  # validate the labels once, block by block
        spec.codec.encode(data.read_rows(chosen[start_block : start_block + 256]))
    chosen_ids = [data.ids[i] for i in chosen]
    if resume and runs.read_training_ids(out / runs.TRAIN_IMAGES) != chosen_ids:
        raise InputError(
            f"--resume: the data does not hold the images {out} was trained on "
            f"({runs.TRAIN_IMAGES}); resume with the same --data"
        )
    if not resume:
        check_batch_fits(cfg, spec.shape, device)
    if not replacing:
        if not resume:
            _start_run(out, cfg, spec, data, chosen, device)
        return _train(out, out, cfg, spec, data, chosen, device, max_steps, max_time, resume, progress, monitor,
                      holdout)
    with atomic_dir(out, overwrite=True) as work:  # the old run stays until the new one is complete
        _start_run(work, cfg, spec, data, chosen, device)
        return _train(work, out, cfg, spec, data, chosen, device, max_steps, max_time, resume, progress, monitor,
                      holdout)


def _train(work: Path, out: Path, cfg: TrainConfig, spec: DataSpec, data: ImageSet, chosen: np.ndarray,
           device: str, max_steps: int | None, max_time: float | None, resume: bool,
           progress: Progress | None, monitor: MonitorConfig | None = None,
           holdout: ImageSet | None = None) -> TrainResult:
    """The training loop, writing into ``work``; the result names the paths the run has at ``out``."""
    kind = cfg.kind
    codec = spec.codec
    n_train = len(chosen)
    trainer = build_trainer(cfg, spec.shape, device)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = 0
    if resume:
        state = runs.load_checkpoint(work / runs.CHECKPOINT, device)
        trainer.load_state_dict(state["trainer"])
        gen.set_state(state["rng"].cpu())
        start = int(state["step"])
        runs.truncate_log(work / runs.LOG, start)
    total = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
    mon = None if monitor is None or holdout is None else _monitor(monitor, data, chosen, holdout, work, device,
                                                                   resume)
    logger.info("training %s on %d images from step %d to %d on %s", kind, n_train, start, total, device)

    t0 = time.perf_counter()
    losses: dict[str, float] = {}
    grids: list[Path] = []
    step, stopped_by = start, "steps" if total == cfg.steps else "max_steps"
    with BatchPrefetcher(data, chosen, codec, cfg.batch_size, cfg.seed, start, device) as batches:
        while step < total:
            pending = trainer.step(batches.next(), gen, step)  # stays on the device: no sync per step
            step += 1
            elapsed = time.perf_counter() - t0
            ips = (step - start) * cfg.batch_size / max(elapsed, 1e-9)
            logged = step % cfg.log_every == 0 or step == total
            checkpoint = bool(cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total)
            if logged or checkpoint:
                losses = _read_losses(pending, step)
            if logged:
                runs.append_log(
                    work / runs.LOG,
                    {"step": step, **losses, "images_per_s": round(ips, 3), "elapsed_s": round(elapsed, 3)},
                )
            if checkpoint:
                _checkpoint(work, trainer, gen, step)
            if cfg.grid_every and step % cfg.grid_every == 0 and step < total:
                grids.append(_grid(work, trainer, spec, step))
            if progress is not None:
                progress("train", step, total)
            out_of_time = max_time is not None and elapsed >= max_time and step < total
            if mon is not None and mon.after_step(
                step, total, functools.partial(_samples, trainer, spec),
                functools.partial(_checkpoint, work, trainer, gen, step), final=out_of_time,
            ):
                stopped_by = "memorization"
                break
            if out_of_time:
                stopped_by = "max_time"
                break
    losses = _read_losses(pending, step) if step > start else losses
    if step > start or not (work / runs.CHECKPOINT).exists():
        _checkpoint(work, trainer, gen, step)
        grids.append(_grid(work, trainer, spec, step))
    if mon is not None:
        mon.finish(step, stopped=stopped_by == "memorization")
    elapsed = time.perf_counter() - t0
    main = generator_spec(kind).main_loss
    return TrainResult(
        run_dir=out,
        kind=kind,
        steps=step,
        start_step=start,
        final_loss=losses.get(main, float("nan")),
        losses=losses,
        images_per_s=(step - start) * cfg.batch_size / max(elapsed, 1e-9),
        elapsed_s=elapsed,
        stopped_by=stopped_by,
        checkpoint=out / runs.CHECKPOINT,
        grids=tuple(out / g.relative_to(work) for g in grids),
        n_train=n_train,
    )


def _checkpoint(out: Path, trainer: Trainer, gen: torch.Generator, step: int, path: Path | None = None) -> None:
    state = {"step": step, "rng": gen.get_state(), "trainer": trainer.state_dict()}
    runs.save_checkpoint(path or out / runs.CHECKPOINT, state)


def _samples(trainer: Trainer, spec: DataSpec, seeds: Sequence[int], sample_steps: int | None) -> np.ndarray:
    """Monitor samples in set values (the EMA weights, the monitor's seeds)."""
    with torch.no_grad():
        return spec.codec.decode(trainer.sample(seeds, sample_steps=sample_steps).float().cpu().numpy())


def _monitor(config: MonitorConfig, data: ImageSet, chosen: np.ndarray, holdout: ImageSet, out: Path, device: str,
             resume: bool) -> MemorizationMonitor:
    from synthgate.generators.monitor import MemorizationMonitor, read_points

    train = data if len(chosen) == len(data) else data.subset(chosen)  # the images a copy would copy
    points = read_points(out / runs.LOG) if resume else []
    return MemorizationMonitor(train, holdout, config, out, device, points)


def _read_losses(pending: dict[str, torch.Tensor], step: int) -> dict[str, float]:
    """The losses of a step as floats (one read from the device); a non-finite loss stops the run."""
    values = torch.stack([v.float() for v in pending.values()]).tolist() if pending else []
    losses = dict(zip(pending, values, strict=True))
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"training diverged by step {step} (losses {losses}); lower --lr")
    return losses


def _grid(out: Path, trainer: Trainer, spec: DataSpec, step: int) -> Path:
    imgs = spec.codec.decode(trainer.sample(GRID_SEEDS).cpu().numpy())
    return save_grid(
        out / runs.GRIDS / f"step-{step:06d}.png", imgs, spec.label_channel, tuple(sorted(spec.codec.label_values))
    )
