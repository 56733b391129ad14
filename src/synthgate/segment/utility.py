"""The utility audit: train segmentation on synthetic slices, test on real subjects, compare with real.

For each mode (``real``: the real training slices, the reference; ``synthetic``; ``mixed``: both) and each
seed, a network is trained (:mod:`synthgate.segment.train`) and tested on the real test subjects, Dice per
subject and region (:mod:`synthgate.segment.evaluate`). The headline is the synthetic/real ratio of the mean
Dice per region (the study found 80-90%).

Presets: ``quick`` (the default) is a meaningful check on 2 CPU cores in a few minutes on 64 px stores;
``study`` follows the study's scale for a GPU: ingest with ``--size 256``, 100 epochs, 3 seeds, wider nets.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

import numpy as np

from synthgate.data.imageset import ImageSet, check_compatible
from synthgate.data.labels import REGIONS
from synthgate.data.manifest import binding_json
from synthgate.errors import InputError, UsageError
from synthgate.runtime import Progress, versions
from synthgate.segment.data import SegmentationData, check_labelled
from synthgate.segment.evaluate import SubjectDice, check_slice_order, evaluate_subjects
from synthgate.segment.models import Net, check_size
from synthgate.segment.train import SegmentTrainConfig, train_segmenter

logger = logging.getLogger(__name__)


class Mode(StrEnum):
    """Which training sources to run."""

    SYNTHETIC = "synthetic"
    REAL = "real"
    MIXED = "mixed"
    ALL = "all"


class UtilityPreset(StrEnum):
    """Setting bundles: ``quick`` for 2 CPU cores at 64 px, ``study`` for a GPU at 256 px."""

    QUICK = "quick"
    STUDY = "study"


@dataclass(frozen=True)
class UtilityConfig:
    """Settings of the utility audit.

    Attributes:
        train: how each network is trained (net, epochs, batch size, learning rate, ...).
        seeds: one training run per seed and mode; mean and sd are over subjects and seeds.
        mode: ``all`` runs real, synthetic and mixed (synthetic and mixed need a synthetic set).
        eval_batch_size: test slices per forward pass.
    """

    train: SegmentTrainConfig = field(default_factory=SegmentTrainConfig)
    seeds: tuple[int, ...] = (0,)
    mode: Mode = Mode.ALL
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds:
            raise UsageError("--seeds must be >= 1")
        if len(set(self.seeds)) != len(self.seeds):
            raise UsageError(f"seeds must be distinct, got {list(self.seeds)}")
        if self.eval_batch_size < 1:
            raise UsageError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")

    @classmethod
    def preset(cls, preset: UtilityPreset | str, net: Net | str = Net.UNET, **overrides: Any) -> UtilityConfig:
        """The settings of a preset for ``net``; ``overrides`` replace ``SegmentTrainConfig`` fields or
        ``seeds``/``mode``/``eval_batch_size`` (``None`` values are ignored)."""
        preset, net = UtilityPreset(preset), Net(net)
        if preset is UtilityPreset.QUICK:
            train = SegmentTrainConfig(
                net=net,
                epochs=20,
                batch_size=8,
                lr=5e-3 if net is Net.UNET else 5e-4,
                width=16 if net is Net.UNET else 12,
            )
            seeds: tuple[int, ...] = (0,)
        else:
            train = SegmentTrainConfig(
                net=net,
                epochs=100,
                batch_size=32,
                lr=1e-3 if net is Net.UNET else 2e-4,
                width=32 if net is Net.UNET else 48,
            )
            seeds = (0, 1, 2)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        top = {k: overrides.pop(k) for k in ("seeds", "mode", "eval_batch_size") if k in overrides}
        top.setdefault("seeds", seeds)
        unknown = set(overrides) - {f.name for f in fields(SegmentTrainConfig)}
        if unknown:
            raise UsageError(f"unknown utility settings {sorted(unknown)}; see UtilityConfig and SegmentTrainConfig")
        return cls(train=replace(train, **overrides), **top)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"]["net"] = str(self.train.net)
        d["mode"] = str(self.mode)
        d["seeds"] = list(self.seeds)
        return d


@dataclass(frozen=True)
class SeedRun:
    """One trained network of one mode: its seed, mean test Dice and training facts."""

    seed: int
    mean: dict[str, float]
    best_epoch: int
    best_val_dice: float | None
    n_train: int
    n_val: int
    val_split: str
    train_seconds: float
    slices_per_second: float


@dataclass(frozen=True)
class ModeResult:
    """Results of one mode over all seeds; ``per_subject``: (seed, subject Dice), opaque subject ids."""

    mode: str
    mean: dict[str, float]
    sd: dict[str, float | None]  # None with a single (seed, subject) value
    runs: tuple[SeedRun, ...]
    per_subject: tuple[tuple[int, SubjectDice], ...]


@dataclass(frozen=True)
class UtilityResult:
    """Everything the utility audit found. Subject ids in ``modes`` are opaque (``S01``...);
    ``subject_map`` maps them to the real ids and is PRIVATE."""

    config: UtilityConfig
    modes: Mapping[str, ModeResult]
    ratio: dict[str, float | None]
    mixed_ratio: dict[str, float | None]
    counts: dict[str, int]
    subject_map: Mapping[str, str]
    device: str
    created: str
    versions: dict[str, str | None]
    binding: dict[str, Any] = field(default_factory=dict)  # content hashes of the sets (no real id)


def _ratio(num: ModeResult | None, den: ModeResult | None) -> dict[str, float | None]:
    if num is None or den is None:
        return {r: None for r in REGIONS}
    return {r: (num.mean[r] / den.mean[r] if den.mean[r] > 0 else None) for r in REGIONS}


def _summarise(mode: str, runs: list[SeedRun], rows: list[tuple[int, SubjectDice]]) -> ModeResult:
    mean: dict[str, float] = {}
    sd: dict[str, float | None] = {}
    for r in REGIONS:
        vals = np.array([d.dice[r] for _, d in rows], dtype=np.float64)
        mean[r] = float(vals.mean())
        sd[r] = float(vals.std(ddof=1)) if len(vals) > 1 else None
    return ModeResult(mode=mode, mean=mean, sd=sd, runs=tuple(runs), per_subject=tuple(rows))


def _check_inputs(synthetic: ImageSet | None, real_train: ImageSet, real_test: ImageSet, net: Net) -> None:
    check_labelled(real_train, "real training set")
    check_labelled(real_test, "real test set")
    check_compatible(real_train, real_test, "real training set", "real test set")
    if synthetic is not None:
        check_labelled(synthetic, "synthetic set")
        check_compatible(real_train, synthetic, "real training set", "synthetic set")
    shared = set(real_train.subjects) & set(real_test.subjects)
    if shared:
        raise InputError(
            f"{len(shared)} subject(s) are in both the real training and the real test set; test "
            "subjects must be unseen: ingest with --split so that train and test are disjoint"
        )
    check_slice_order(real_test.subjects, real_test.slice_index, "real test set")
    check_size(net, *real_test.shape[1:])


def run_utility(
    synthetic: ImageSet | None,
    real_train: ImageSet,
    real_test: ImageSet,
    config: UtilityConfig | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
) -> UtilityResult:
    """Run the utility audit.

    Args:
        synthetic: labelled synthetic slices (``None`` runs only the real reference).
        real_train: labelled real training slices (the reference's training source).
        real_test: labelled real test slices of subjects disjoint from ``real_train``.
        config: settings (default: the ``quick`` preset).
        device: where networks train and predict.
        progress: called as ``progress("utility", epochs done, epochs in total)`` over all modes and seeds.

    Returns:
        Dice per subject, mean and sd per mode and region, and the synthetic/real and mixed/real ratios.

    Raises:
        InputError: unlabelled, empty or incompatible sets, or shared train/test subjects.
        UsageError: a mode that needs the synthetic set without one, or images the network cannot take.
    """
    config = config or UtilityConfig()
    if synthetic is None and config.mode in (Mode.SYNTHETIC, Mode.MIXED):
        raise UsageError(f"--mode {config.mode} needs --synthetic")
    _check_inputs(synthetic, real_train, real_test, config.train.net)
    sources: dict[str, SegmentationData] = {}
    if config.mode in (Mode.REAL, Mode.ALL):
        sources["real"] = SegmentationData((real_train,), ("real",), check_labels=False)
    if synthetic is not None and config.mode in (Mode.SYNTHETIC, Mode.ALL):
        sources["synthetic"] = SegmentationData((synthetic,), ("synthetic",), check_labels=False)
    if synthetic is not None and config.mode in (Mode.MIXED, Mode.ALL):
        sources["mixed"] = SegmentationData((synthetic, real_train), ("synthetic", "real"), check_labels=False)
    opaque = {sub: f"S{i + 1:02d}" for i, sub in enumerate(real_test.subject_ids)}
    total = len(sources) * len(config.seeds) * config.train.epochs
    done = 0
    modes: dict[str, ModeResult] = {}
    for name, data in sources.items():
        runs: list[SeedRun] = []
        rows: list[tuple[int, SubjectDice]] = []
        for seed in config.seeds:

            def tick(_stage: str, epoch: int, _epochs: int, base: int = done) -> None:
                if progress is not None:
                    progress("utility", base + epoch, total)

            trained = train_segmenter(data, config.train, seed=seed, device=device, progress=tick)
            done += config.train.epochs
            dice = evaluate_subjects(trained.model, real_test, device, config.eval_batch_size, check_labels=False)
            dice = [replace(d, subject=opaque[d.subject]) for d in dice]
            rows.extend((seed, d) for d in dice)
            mean = {r: float(np.mean([d.dice[r] for d in dice])) for r in REGIONS}
            runs.append(
                SeedRun(
                    seed,
                    mean,
                    trained.best_epoch,
                    trained.best_val_dice,
                    trained.n_train,
                    trained.n_val,
                    trained.val_split,
                    trained.seconds,
                    trained.slices_per_second,
                )
            )
            logger.info("%s seed %d: %s", name, seed, mean)
        modes[name] = _summarise(name, runs, rows)
    counts = {
        "real_train": len(real_train),
        "real_train_subjects": len(real_train.subject_ids),
        "real_test": len(real_test),
        "real_test_subjects": len(real_test.subject_ids),
        "synthetic": 0 if synthetic is None else len(synthetic),
    }
    return UtilityResult(
        config=config,
        modes=modes,
        ratio=_ratio(modes.get("synthetic"), modes.get("real")),
        mixed_ratio=_ratio(modes.get("mixed"), modes.get("real")),
        counts=counts,
        subject_map={v: k for k, v in opaque.items()},
        device=str(device),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        versions=versions("torch", "monai", "numpy"),
        binding=binding_json({"synthetic": synthetic, "real_train": real_train, "real_test": real_test},
                             public=("real_train", "real_test")),
    )
