"""Ingest a BraTS-style cohort into slice stores split by subject.

Per subject: reorient to RAS (nibabel), normalise each sequence volume inside the brain, cut axial slices,
keep those with enough brain (default >= 15 % of the slice) or, optionally, only tumour slices, pad to a square
and resize to ``size``, stack the sequences and the label as the last channel. Subjects are split into
train / holdout / test by a seeded permutation, never slices of one subject into two splits.

Normalisations (per volume, per sequence, statistics inside the brain mask; background set to 0):

* ``robust-minmax`` (default): ``(x - p0.5) / (p99.5 - p0.5)`` clipped to [0, 1]. On raw, non-negative MRI the
  0.5th percentile is near 0, so this is the reference study's scaling by a robust maximum; it also handles
  z-scored data (BRATS 2013) whose values are negative.
* ``robust-max``: ``x / p99.5`` clipped to [0, 1] (the study's scaling, for non-negative data).
* ``zscore``: ``(x - mean) / sd`` inside the brain, unbounded.
* ``none``: intensities as stored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from synthgate import __version__
from synthgate.atomic import atomic_dir
from synthgate.data.brats import (
    LABEL,
    SubjectFiles,
    SubjectVolumes,
    cohort_label_map,
    discover_subjects,
    load_subject,
)
from synthgate.data.imageset import ImageSet, Skipped
from synthgate.data.labels import LabelMap
from synthgate.data.readers import OnError
from synthgate.data.store import StoreWriter
from synthgate.errors import InputError, UsageError

logger = logging.getLogger(__name__)

SPLITS = ("train", "holdout", "test")


class Normalisation(StrEnum):
    """Per-volume intensity normalisation (see the module docstring)."""

    ROBUST_MINMAX = "robust-minmax"
    ROBUST_MAX = "robust-max"
    ZSCORE = "zscore"
    NONE = "none"


class SliceSelection(StrEnum):
    """Which axial slices to keep."""

    BRAIN = "brain"  # at least min_brain_fraction brain pixels
    TUMOUR = "tumour"  # as BRAIN, and at least one tumour pixel


@dataclass(frozen=True)
class IngestConfig:
    """Ingest settings.

    Attributes:
        size: output H = W in pixels (slices are padded to a square, then resized).
        normalisation: per-volume intensity normalisation.
        min_brain_fraction: keep slices whose brain covers at least this fraction of the slice.
        slices: ``brain`` or ``tumour`` slice selection.
        split: fractions of SUBJECTS for train, holdout, test (sum 1).
        seed: seed of the subject split.
        labels: label convention (``None``: detected from the file names).
        dtype: store dtype (``float32`` or ``float16``).
    """

    size: int = 256
    normalisation: Normalisation = Normalisation.ROBUST_MINMAX
    min_brain_fraction: float = 0.15
    slices: SliceSelection = SliceSelection.BRAIN
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0
    labels: str | None = None
    dtype: str = "float32"
    percentiles: tuple[float, float] = field(default=(0.5, 99.5))

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 2048:
            raise UsageError(f"--size must be between 8 and 2048 pixels, got {self.size}")
        if not 0.0 <= self.min_brain_fraction <= 1.0:
            raise UsageError(f"--min-brain must be a fraction in [0, 1], got {self.min_brain_fraction}")
        if len(self.split) != 3 or any(f < 0 for f in self.split) or abs(sum(self.split) - 1.0) > 1e-6:
            raise UsageError(f"--split must be three non-negative fractions summing to 1, got {self.split}")
        if self.dtype not in ("float32", "float16"):
            raise UsageError(f"--dtype must be float32 or float16, got {self.dtype!r}")
        object.__setattr__(self, "normalisation", Normalisation(self.normalisation))
        object.__setattr__(self, "slices", SliceSelection(self.slices))


def normalise_volume(x: np.ndarray, brain: np.ndarray, method: Normalisation,
                     percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Normalise one sequence volume using the statistics inside ``brain``; background becomes 0."""
    x = x.astype(np.float32, copy=False)
    inside = x[brain]
    if method is Normalisation.NONE or inside.size == 0:
        return np.where(brain, x, 0).astype(np.float32)
    if method is Normalisation.ZSCORE:
        sd = float(inside.std()) or 1.0
        out = (x - float(inside.mean())) / sd
    else:
        lo, hi = (float(v) for v in np.percentile(inside, percentiles))
        if method is Normalisation.ROBUST_MAX:
            lo = 0.0
        out = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return np.where(brain, out, 0).astype(np.float32)


def _to_square(stack: np.ndarray) -> np.ndarray:
    """Zero-pad the last two axes of ``stack`` to a centred square."""
    h, w = stack.shape[-2:]
    s = max(h, w)
    ph, pw = s - h, s - w
    pad = [(0, 0)] * (stack.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
    return np.pad(stack, pad)


def _resize(stack: np.ndarray, size: int) -> np.ndarray:
    """Resize N x C x S x S images to N x C x size x size (antialiased bilinear)."""
    if stack.shape[-1] == size:
        return np.ascontiguousarray(stack, dtype=np.float32)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True).numpy()


def _resize_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """Resize N x 1 x S x S integer labels: each value's antialiased coverage, then the most covered value.

    Unlike nearest-neighbour sampling this keeps small structures that cover enough of an output pixel.
    """
    if labels.shape[-1] == size:
        return np.ascontiguousarray(labels, dtype=np.float32)
    values = np.unique(labels)
    onehot = np.concatenate([(labels == v).astype(np.float32) for v in values], axis=1)
    cover = _resize(onehot, size)
    return values[np.argmax(cover, axis=1)][:, None].astype(np.float32)


def slice_subject(vol: SubjectVolumes, sequences: tuple[str, ...], config: IngestConfig,
                  has_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """Normalise, select and resize one subject's axial slices.

    Returns:
        (images N x C x size x size float32, slice indices N) with the label as the last channel when
        ``has_label``.
    """
    brain = vol.brainmask
    if brain is None:
        brain = np.zeros(next(iter(vol.sequences.values())).shape, dtype=bool)
        for s in sequences:
            brain |= vol.sequences[s] != 0
    chans = [normalise_volume(vol.sequences[s], brain, config.normalisation, config.percentiles) for s in sequences]
    fraction = brain.mean(axis=(0, 1))
    keep = fraction >= config.min_brain_fraction
    if config.slices is SliceSelection.TUMOUR and vol.label is None:
        raise UsageError("--slices tumour needs label files; this cohort has none")
    z = np.flatnonzero(keep)
    if has_label:
        assert vol.label is not None  # checked by the caller: every subject has a label file
        chans.append(vol.label.astype(np.float32))
    # RAS volume X x Y x Z -> axial images with anterior up: rows = Y reversed, columns = X.
    stack = np.stack([c[:, :, z] for c in chans])  # C x X x Y x N
    stack = np.transpose(stack, (3, 0, 2, 1))[:, :, ::-1, :]  # N x C x Y x X, anterior up
    stack = _to_square(stack)
    img = _resize(stack[:, : len(sequences)], config.size)
    if has_label:
        lab = _resize_labels(stack[:, len(sequences) :], config.size)
        img = np.concatenate([img, lab], axis=1)
        if config.slices is SliceSelection.TUMOUR:  # decided at the output size: the tumour must survive resizing
            has_tumour = (lab > 0).any(axis=(1, 2, 3))
            img, z = img[has_tumour], z[has_tumour]
    return np.ascontiguousarray(img, dtype=np.float32), z


def split_subjects(subjects: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, list[str]]:
    """Assign subjects to train / holdout / test by a seeded permutation.

    Counts follow the fractions by largest remainder; every split with a positive fraction gets at least one
    subject while there are enough subjects, train first.
    """
    n = len(subjects)
    raw = np.asarray(fractions) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    for i in range(3):
        if fractions[i] > 0 and counts[i] == 0:
            donor = int(np.argmax(counts))
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [sorted(subjects)[i] for i in order]
    out: dict[str, list[str]] = {}
    start = 0
    for name, c in zip(SPLITS, counts, strict=True):
        out[name] = sorted(shuffled[start : start + c])
        start += c
    return out


@dataclass(frozen=True)
class CohortPlan:
    """The subjects of a cohort, their channels and label map, before any volume is read."""

    subjects: list[SubjectFiles]
    sequences: tuple[str, ...]
    has_label: bool
    label_map: LabelMap | None

    @property
    def channels(self) -> tuple[str, ...]:
        return self.sequences + ((LABEL,) if self.has_label else ())


def plan_cohort(cohort: Path, config: IngestConfig) -> CohortPlan:
    """Discover subjects and check they agree on sequences and labels.

    Raises:
        InputError: no subject, or two subjects with different sequences / label presence (naming both).
    """
    if not cohort.is_dir():
        raise InputError(f"{cohort} is not a folder; give a BraTS-style cohort folder")
    subjects = discover_subjects(cohort)
    if not subjects:
        raise InputError(f"{cohort}: no subject folder with sequence NIfTI files (t1, t1c, t2, flair) found")
    first = subjects[0]
    for s in subjects[1:]:
        if s.sequences != first.sequences or (LABEL in s.files) != (LABEL in first.files):
            raise InputError(
                f"subject {s.subject} has {list(s.sequences)}{' + label' if LABEL in s.files else ''} but "
                f"{first.subject} has {list(first.sequences)}{' + label' if LABEL in first.files else ''}; "
                "every subject needs the same sequences"
            )
    has_label = LABEL in first.files
    return CohortPlan(subjects, first.sequences, has_label,
                      cohort_label_map(subjects, config.labels) if has_label else None)


def _store_meta(plan: CohortPlan, config: IngestConfig, cohort_spacing: tuple[float, ...] | None) -> dict[str, Any]:
    return {
        "label_channel": len(plan.sequences) if plan.has_label else None,
        "label_map": None if plan.label_map is None else plan.label_map.to_json(),
        "normalisation": str(config.normalisation),
        "size": config.size,
        "spacing": None if cohort_spacing is None else list(cohort_spacing),
        "ingest": {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, StrEnum) else v)
                   for k, v in asdict(config).items()},
    }


def slice_cohort(cohort: Path, config: IngestConfig, on_error: OnError = OnError.RAISE,
                 progress: Callable[[int, int], None] | None = None) -> ImageSet:
    """Slice a whole cohort into one in-memory set (no split); for ingest into stores use :func:`ingest_cohort`."""
    plan = plan_cohort(Path(cohort), config)
    blocks: list[np.ndarray] = []
    ids: list[str] = []
    subjects: list[str] = []
    slices: list[int] = []
    skipped: list[Skipped] = []
    spacing = None
    for i, sf in enumerate(plan.subjects):
        try:
            vol = load_subject(sf, plan.label_map) if plan.label_map else _load_unlabelled(sf)
        except InputError as e:
            if on_error is OnError.SKIP:
                skipped.append(Skipped(str(sf.folder), str(e)))
                continue
            raise
        spacing = spacing or vol.spacing
        img, z = slice_subject(vol, plan.sequences, config, plan.has_label)
        blocks.append(img)
        ids += [f"{sf.subject}_z{k:03d}" for k in z]
        subjects += [sf.subject] * len(z)
        slices += [int(k) for k in z]
        if progress:
            progress(i + 1, len(plan.subjects))
    c = len(plan.channels)
    images = np.concatenate(blocks) if blocks else np.zeros((0, c, config.size, config.size), np.float32)
    meta = _store_meta(plan, config, spacing)
    return ImageSet(
        images=images, ids=tuple(ids), subjects=tuple(subjects), channels=plan.channels,
        label_channel=meta["label_channel"], label_map=plan.label_map,
        slice_index=np.asarray(slices, dtype=np.int64), sources=("real",) * len(ids),
        meta={k: v for k, v in meta.items() if k not in ("label_channel", "label_map")},
        skipped=tuple(skipped),
    )


def _load_unlabelled(sf: SubjectFiles) -> SubjectVolumes:
    from synthgate.data.labels import BRATS2021

    return load_subject(sf, BRATS2021)


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_cohort` wrote."""

    out: Path
    stores: dict[str, Path]
    counts: dict[str, dict[str, int]]  # split -> {"subjects": n, "images": n}
    channels: tuple[str, ...]
    label_convention: str | None
    skipped: tuple[Skipped, ...]
    seconds: float
    bytes_written: int

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "stores": {k: str(v) for k, v in self.stores.items()},
            "counts": self.counts,
            "channels": list(self.channels),
            "label_convention": self.label_convention,
            "skipped": [asdict(s) for s in self.skipped],
            "seconds": round(self.seconds, 2),
            "bytes_written": self.bytes_written,
        }


def ingest_cohort(cohort: str | Path, out: str | Path, config: IngestConfig | None = None, *,
                  on_error: OnError | str = OnError.RAISE, overwrite: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> IngestResult:
    """Ingest ``cohort`` into ``out/{train,holdout,test}`` slice stores plus ``out/ingest.json``.

    Subjects stream one at a time, so memory holds one subject. The output folder appears whole or not at all.
    Splits that receive no subject are not written.

    Raises:
        InputError: invalid cohort (exit 5); with ``on_error="skip"`` invalid subjects are skipped and listed.
        UsageError: bad settings, or ``out`` exists without ``overwrite``.
    """
    t0 = time.perf_counter()
    config = config or IngestConfig()
    mode = OnError(on_error)
    cohort, out = Path(cohort), Path(out)
    plan = plan_cohort(cohort, config)
    assignment = split_subjects([s.subject for s in plan.subjects], config.split, config.seed)
    split_of = {s: name for name, subs in assignment.items() for s in subs}
    skipped: list[Skipped] = []
    counts: dict[str, dict[str, int]] = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writers = {name: StoreWriter(tmp / name, plan.channels, config.dtype) for name in SPLITS if assignment[name]}
        kept_subjects: dict[str, set[str]] = {name: set() for name in writers}
        spacing = None
        for i, sf in enumerate(plan.subjects):
            try:
                vol = load_subject(sf, plan.label_map) if plan.label_map else _load_unlabelled(sf)
            except InputError as e:
                if mode is OnError.SKIP:
                    logger.warning("skipping subject %s: %s", sf.subject, e)
                    skipped.append(Skipped(str(sf.folder), str(e)))
                    continue
                raise
            spacing = spacing or vol.spacing
            img, z = slice_subject(vol, plan.sequences, config, plan.has_label)
            name = split_of[sf.subject]
            writers[name].append(img, [f"{sf.subject}_z{k:03d}" for k in z], sf.subject, z, "real")
            kept_subjects[name].add(sf.subject)
            if progress:
                progress(i + 1, len(plan.subjects))
        if len(skipped) == len(plan.subjects):
            raise InputError(f"{cohort}: every subject was invalid and skipped; nothing to ingest")
        meta = _store_meta(plan, config, spacing)
        for name, w in writers.items():
            n = w.close({**meta, "split": name}, config.size)
            counts[name] = {"subjects": len(kept_subjects[name]), "images": n}
        bytes_written = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        result = IngestResult(
            out=out, stores={name: out / name for name in writers}, counts=counts, channels=plan.channels,
            label_convention=None if plan.label_map is None else str(plan.label_map.convention),
            skipped=tuple(skipped), seconds=time.perf_counter() - t0, bytes_written=bytes_written,
        )
        record = {"synthgate_version": __version__, "cohort_subjects": len(plan.subjects),
                  "settings": meta["ingest"], **result.to_json()}
        record["splits"] = assignment
        (tmp / "ingest.json").write_text(json.dumps(record, indent=2) + "\n")
    return result
