"""One function per stage of the flow: load the inputs, call the library, write the outputs, return a typed result.

``ingest -> train -> sample -> audit_memorization -> audit_utility -> build -> verify``. The CLI commands and
the demo (:mod:`synthgate.demo`) call these functions and nothing else repeats their recipe; each result has
``to_json()``, which is what the command prints with ``--json``. Set inputs are a path (slice store, image
folder, BraTS-style folder; see :func:`~synthgate.data.readers.load_set`) or an :class:`ImageSet` already
loaded. Each function checks its output folder before any work, so a long run never ends in "already exists".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthgate import distributed
from synthgate.atomic import check_target
from synthgate.data.imageset import ImageSet
from synthgate.errors import UsageError
from synthgate.runtime import Progress

if TYPE_CHECKING:
    from synthgate.audit.memorization import MemorizationConfig, MemorizationResult
    from synthgate.data.ingest import IngestConfig, IngestResult
    from synthgate.generators.config import TrainConfig
    from synthgate.generators.loop import TrainResult
    from synthgate.generators.monitor import MonitorConfig
    from synthgate.release.bundle import BuildResult
    from synthgate.release.policy import ReleasePolicy
    from synthgate.release.verify import VerifyResult
    from synthgate.segment.utility import UtilityConfig, UtilityResult

PathLike = str | os.PathLike[str]
SetInput = PathLike | ImageSet


def load(data: SetInput) -> ImageSet:
    """An :class:`ImageSet` as is; a path read with :func:`~synthgate.data.readers.load_set`."""
    if isinstance(data, ImageSet):
        return data
    from synthgate.data.readers import load_set

    return load_set(data)


def ingest(
    cohort: PathLike,
    out: PathLike,
    config: IngestConfig | None = None,
    on_error: str = "raise",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> IngestResult:
    """Slice a BraTS-style cohort into train / holdout / test slice stores split by subject (``data ingest``)."""
    from synthgate.data.ingest import ingest_cohort

    return ingest_cohort(Path(cohort), Path(out), config, on_error=on_error, overwrite=overwrite, progress=progress)


@dataclass(frozen=True)
class TrainStage:
    """A trained run (``generators train``): the loop's result, the device, and the monitor's record."""

    result: TrainResult
    device: str
    monitor: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "run_dir": str(r.run_dir),
            "kind": str(r.kind),
            "steps": r.steps,
            "start_step": r.start_step,
            "stopped_by": r.stopped_by,
            "losses": r.losses,
            "images_per_s": round(r.images_per_s, 2),
            "elapsed_s": round(r.elapsed_s, 1),
            "n_train": r.n_train,
            "device": self.device,
            "checkpoint": str(r.checkpoint),
            "grids": [str(g) for g in r.grids],
            "monitor": self.monitor,
        }


def train(
    config: TrainConfig | None,
    data: SetInput,
    out: PathLike,
    device: str = "cpu",
    max_steps: int | None = None,
    max_time: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    monitor: MonitorConfig | None = None,
    holdout: SetInput | None = None,
    progress: Progress | None = None,
) -> TrainStage:
    """Train a generator into the run directory ``out`` (``generators train``).

    Args:
        config: the run's configuration (its ``kind`` says which generator); ``None`` with ``resume``.
        monitor: audit the generator for memorization while it trains (needs ``holdout``); see
            :mod:`synthgate.generators.monitor`.
        holdout: real images of subjects not in ``data`` (calibrates the monitor's audit).

    Raises:
        UsageError: ``monitor`` without ``holdout``, or the errors of
            :func:`~synthgate.generators.loop.train_generator`.
    """
    from synthgate.generators import train_generator
    from synthgate.generators.runs import read_monitor

    if monitor is not None and holdout is None:
        raise UsageError("--monitor-every / --stop-on-memorization need --monitor HOLDOUT (a holdout set)")
    result = train_generator(
        config, load(data), out, device=device, max_steps=max_steps, max_time=max_time, resume=resume,
        progress=progress, overwrite=overwrite, monitor=monitor, holdout=None if holdout is None else load(holdout),
    )
    return TrainStage(result, device, read_monitor(result.run_dir) if monitor is not None else None)


@dataclass(frozen=True)
class SampleStage:
    """A synthetic slice store sampled from a run (``generators sample``)."""

    store: Path
    n: int
    kind: str
    step: int
    device: str
    checkpoint: dict[str, Any] | None = None  # the monitor's kept checkpoint and why, when it chose one

    def to_json(self) -> dict[str, Any]:
        return {"store": str(self.store), "n": self.n, "kind": self.kind, "step": self.step, "device": self.device,
                "checkpoint": self.checkpoint}


def sample(
    run: PathLike,
    n: int,
    out: PathLike,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 32,
    sample_steps: int | None = None,
    truncation: float | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> SampleStage:
    """Sample ``n`` images from a trained run into the slice store ``out`` (per-sample seeds in its index)."""
    from synthgate.data.store import write_store
    from synthgate.generators import sample_generator

    distributed.on_main(lambda: check_target(out, overwrite))  # rank 0 writes: it checks
    s = sample_generator(run, n, seed=seed, device=device, batch_size=batch_size, sample_steps=sample_steps,
                         truncation=truncation, progress=progress)
    path = distributed.on_main(lambda: write_store(s, out, dtype=dtype, overwrite=overwrite)) or Path(out)
    gen = s.meta["generator"]
    return SampleStage(path, len(s), str(gen["kind"]), int(gen["step"]), device, gen.get("monitor"))


@dataclass(frozen=True)
class MemorizationStage:
    """The memorization audit and the folder it wrote (``audit memorization``)."""

    out: Path
    result: MemorizationResult
    train: ImageSet

    def to_json(self) -> dict[str, Any]:
        from synthgate.audit.report import summary_json

        return summary_json(self.result, self.train) | {"out": str(self.out)}


def audit_memorization(
    train: SetInput,
    synthetic: SetInput,
    holdout: SetInput | None,
    out: PathLike,
    config: MemorizationConfig | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> MemorizationStage:
    """Search ``synthetic`` for copies of ``train``, calibrate on ``holdout``; write the PRIVATE evidence."""
    from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit
    from synthgate.audit.report import write_audit_outputs

    distributed.on_main(lambda: check_target(out, overwrite))
    train_set, syn_set = load(train), load(synthetic)
    hold_set = None if holdout is None else load(holdout)
    result = run_memorization_audit(train_set, syn_set, hold_set, config or MemorizationConfig(), progress)
    path = distributed.on_main(  # rank 0 writes
        lambda: write_audit_outputs(result, out, train_set, syn_set, overwrite=overwrite, holdout=hold_set)
    ) or Path(out)
    return MemorizationStage(path, result, train_set)


@dataclass(frozen=True)
class UtilityStage:
    """The utility audit and the folder it wrote (``audit utility``)."""

    out: Path
    result: UtilityResult

    def to_json(self) -> dict[str, Any]:
        from synthgate.segment.report import utility_json

        return utility_json(self.result) | {"out": str(self.out)}


def audit_utility(
    synthetic: SetInput | None,
    real_train: SetInput,
    real_test: SetInput,
    out: PathLike,
    config: UtilityConfig | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> UtilityStage:
    """Train segmentation on synthetic (and real) slices, test on real subjects; write the outputs."""
    from synthgate.segment.report import write_utility_outputs
    from synthgate.segment.utility import run_utility

    distributed.on_main(lambda: check_target(out, overwrite))
    syn = None if synthetic is None else load(synthetic)
    result = run_utility(syn, load(real_train), load(real_test), config, device=device, progress=progress)
    path = distributed.on_main(lambda: write_utility_outputs(result, out, overwrite=overwrite))  # rank 0 writes
    return UtilityStage(path or Path(out), result)


@dataclass(frozen=True)
class BuildStage:
    """A released bundle (``release build``); a refusal raises :class:`~synthgate.release.gate.ReleaseRefused`."""

    result: BuildResult

    @property
    def card(self) -> Path:
        from synthgate.release.bundle import CARD, PAYLOAD

        return self.result.path / PAYLOAD / CARD

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return r.decision.to_json() | {
            "bundle": str(r.path),
            "released": r.n_released,
            "public_report": str(r.report_html),
            "card": str(self.card),
        }


def build(
    synthetic: SetInput,
    audit: PathLike,
    utility: PathLike | None,
    policy: ReleasePolicy,
    out: PathLike,
    train: SetInput | None = None,
    overwrite: bool = False,
    holdout: SetInput | None = None,
    allow_real: bool = False,
) -> BuildStage:
    """Gate ``synthetic`` on its audit folders under ``policy``; on a pass write the BagIt bundle ``out``.

    Raises:
        ReleaseRefused: a policy check failed (exit 3); nothing is written.
    """
    from synthgate.release.bundle import build_release

    check_target(out, overwrite)
    tr = None if train is None else load(train)
    ho = None if holdout is None else load(holdout)
    return BuildStage(build_release(load(synthetic), audit, utility, policy, out, overwrite=overwrite, train=tr,
                                    holdout=ho, allow_real=allow_real))


def verify(bundle: PathLike, train: SetInput | None = None) -> VerifyResult:
    """Check a bundle: BagIt checksums, the ``datasets`` round trip, NIfTI, and with ``train`` a re-audit."""
    from synthgate.release.verify import verify_bundle

    return verify_bundle(bundle, train=None if train is None else load(train))
