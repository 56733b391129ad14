"""``train_generator``: the loop every generator kind shares: run directory, batches, checkpoints, loss log,
sample grids, resume. What differs between kinds (the step, EMA, sampling) is in :mod:`synthgate.generators.trainers`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from synthgate import distributed
from synthgate.atomic import atomic_dir
from synthgate.data.imageset import ImageSet, require_nonempty
from synthgate.errors import InputError, UsageError
from synthgate.generators import replicas, runs
from synthgate.generators.batches import BatchPrefetcher
from synthgate.generators.config import GeneratorKind, TrainConfig
from synthgate.generators.grid import save_grid
from synthgate.generators.memory import check_batch_fits
from synthgate.generators.registry import build_trainer, generator_spec
from synthgate.generators.runs import DataSpec
from synthgate.generators.shards import EpochStream, step_seed
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

    Under a torch.distributed process group (``torchrun``) the training is data parallel: every rank reads its
    own ``batch_size`` images of each global batch (:mod:`synthgate.generators.shards`), gradients are averaged
    over the ranks (:mod:`synthgate.generators.replicas`), rank 0 writes the run directory, and ``images_per_s``
    counts all ranks.

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
    if monitor is not None and distributed.world_size() > 1:
        raise UsageError("the memorization monitor (--monitor) runs in one process; start it without torchrun")
    require_nonempty(data, "the training data")
    spec = _data_spec(data, "the training data")
    out = Path(out_dir)
    # every check on the input before the run folder is touched (a failed --overwrite loses nothing); rank 0
    # reads the run folder, every rank checks its share of the labels and that its batch fits its device
    checked = distributed.on_main(lambda: _check_run(out, config, spec, data, resume, overwrite))
    cfg, replacing, extended = cast(tuple[TrainConfig, bool, bool], distributed.broadcast(checked))
    chosen = _choose(len(data), cfg)
    blocks = range(0, len(chosen), 256)

    def validate() -> None:  # the labels once, block by block, the blocks spread over the ranks
        for b in distributed.shard(len(blocks)):
            spec.codec.encode(data.read_rows(chosen[blocks[b] : blocks[b] + 256]))
        if not resume:
            check_batch_fits(cfg, spec.shape, device)

    distributed.gather_checked(validate)
    with contextlib.ExitStack() as stack:

        def open_work() -> Path:  # rank 0: the folder every write of this run goes to
            if resume:
                if extended:
                    runs.write_json(out / runs.CONFIG, cfg.to_json())  # the run now ends at the new total
                return out
            work = stack.enter_context(atomic_dir(out, overwrite=True)) if replacing else out
            _start_run(work, cfg, spec, data, chosen, device)
            return work

        work = cast(Path, distributed.broadcast(distributed.on_main(open_work)))
        result = _train(work, out, cfg, spec, data, chosen, device, max_steps, max_time, resume, progress, monitor,
                        holdout)
        distributed.on_main(stack.close)  # the old run stays until the new one is complete
    return result


def _check_run(out: Path, config: TrainConfig | None, spec: DataSpec, data: ImageSet, resume: bool,
               overwrite: bool) -> tuple[TrainConfig, bool, bool]:
    """Rank 0's checks of the run folder, before anything is written: the run's configuration, whether an
    existing run is replaced, and whether a resumed run is extended (its ``config.json`` gets the new steps)."""
    replacing = not resume and out.exists() and any(out.iterdir())
    if replacing and not overwrite:
        raise UsageError(f"{out} already exists; pass --resume to continue it, --overwrite, or another --out")
    cfg = _resolve_config(out, config, spec, resume)
    if not resume:
        return cfg, replacing, False
    chosen_ids = [data.ids[i] for i in _choose(len(data), cfg)]
    if runs.read_training_ids(out / runs.TRAIN_IMAGES) != chosen_ids:
        raise InputError(
            f"--resume: the data does not hold the images {out} was trained on "
            f"({runs.TRAIN_IMAGES}); resume with the same --data"
        )
    return cfg, False, cfg != runs.open_run(out).config


def _train(work: Path, out: Path, cfg: TrainConfig, spec: DataSpec, data: ImageSet, chosen: np.ndarray,
           device: str, max_steps: int | None, max_time: float | None, resume: bool,
           progress: Progress | None, monitor: MonitorConfig | None = None,
           holdout: ImageSet | None = None) -> TrainResult:
    """The training loop on every rank, rank 0 writing into ``work``; the result names the run's paths at ``out``."""
    kind = cfg.kind
    codec = spec.codec
    world, rank = distributed.world_size(), distributed.rank()
    n_train = len(chosen)
    stream = EpochStream(n_train, cfg.seed)
    trainer = build_trainer(cfg, spec.shape, device)
    start = position = 0
    if resume:  # every rank starts from the state rank 0 read
        state = replicas.load(work)
        trainer.load_state_dict(state["trainer"])
        start = int(state["step"])
        position = int(state.get("position", start * cfg.batch_size))
        distributed.on_main(lambda: runs.truncate_log(work / runs.LOG, start))
    replicas.check(trainer.state_dict(), start)  # the same seeded initial weights on every rank
    total = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
    mon = None if monitor is None or holdout is None else _monitor(monitor, data, chosen, holdout, work, device,
                                                                   resume)
    logger.info("training %s on %d images, steps %d to %d on %s (rank %d of %d)", kind, n_train, start, total,
                device, rank, world)  # fmt: skip

    t0 = time.perf_counter()
    losses: dict[str, float] = {}
    grids: list[Path] = []
    step, stopped_by = start, "steps" if total == cfg.steps else "max_steps"
    global_batch = cfg.batch_size * world

    def rows(s: int) -> np.ndarray:  # this rank's slice of step s's global batch in the epoch stream
        return stream.rank_batch(position + (s - start) * global_batch, cfg.batch_size, rank)

    pending: dict[str, torch.Tensor] = {}
    with BatchPrefetcher(data, chosen, codec, cfg.batch_size, cfg.seed, start, device, rows=rows) as batches:
        while step < total:
            gen = torch.Generator().manual_seed(step_seed(cfg.seed, step, rank))
            pending = trainer.step(batches.next(), gen, step)  # stays on the device: no sync per step
            step += 1
            elapsed = time.perf_counter() - t0
            ips = (step - start) * global_batch / max(elapsed, 1e-9)
            logged = step % cfg.log_every == 0 or step == total
            checkpoint = bool(cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total)
            if logged or checkpoint:
                losses = _read_losses(pending, step)
            if logged and distributed.is_main():
                runs.append_log(
                    work / runs.LOG,
                    {"step": step, **losses, "images_per_s": round(ips, 3), "elapsed_s": round(elapsed, 3)},
                )
            if checkpoint:
                replicas.save(work, trainer.state_dict(), step, position + (step - start) * global_batch)
            if cfg.grid_every and step % cfg.grid_every == 0 and step < total and distributed.is_main():
                grids.append(_grid(work, trainer, spec, step))
            if progress is not None:
                progress("train", step, total)
            out_of_time = max_time is not None and step < total and replicas.any_rank(elapsed >= max_time)
            if mon is not None and mon.after_step(  # one process only (train_generator refuses it under torchrun)
                step, total, functools.partial(_samples, trainer, spec),
                functools.partial(_kept_checkpoint, trainer, step, position + (step - start) * global_batch),
                final=out_of_time,
            ):
                stopped_by = "memorization"
                break
            if out_of_time:
                stopped_by = "max_time"
                break
    losses = _read_losses(pending, step) if step > start else losses
    if step > start or not distributed.broadcast(distributed.on_main((work / runs.CHECKPOINT).exists)):
        replicas.save(work, trainer.state_dict(), step, position + (step - start) * global_batch)
        if distributed.is_main():
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
        images_per_s=(step - start) * cfg.batch_size * world / max(elapsed, 1e-9),
        elapsed_s=elapsed,
        stopped_by=stopped_by,
        checkpoint=out / runs.CHECKPOINT,
        grids=tuple(out / g.relative_to(work) for g in grids),
        n_train=n_train,
    )


def _kept_checkpoint(trainer: Trainer, step: int, position: int, path: Path) -> None:
    """The monitor's copy of a checkpoint (one process: the layout :func:`replicas.save` writes for one rank)."""
    state = {"step": step, "position": position, "world_size": 1, "replica_sha256": [], "trainer": trainer.state_dict()}
    runs.save_checkpoint(path, state)


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
    """The losses of a step as floats (one read from the device), averaged over the ranks; a non-finite loss
    stops the run on every rank."""
    values = torch.stack([v.float() for v in pending.values()]).tolist() if pending else []
    losses = replicas.average_values(dict(zip(pending, values, strict=True)))
    if not all(math.isfinite(v) for v in losses.values()):
        raise InputError(f"training diverged by step {step} (losses {losses}); lower --lr")
    return losses


def _grid(out: Path, trainer: Trainer, spec: DataSpec, step: int) -> Path:
    imgs = spec.codec.decode(trainer.sample(GRID_SEEDS).cpu().numpy())
    return save_grid(
        out / runs.GRIDS / f"step-{step:06d}.png", imgs, spec.label_channel, tuple(sorted(spec.codec.label_values))
    )
