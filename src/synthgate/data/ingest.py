"""Ingest a BraTS-style cohort into slice stores split by subject.

Per subject (see :mod:`synthgate.data.slicing`): reorient to RAS (nibabel), normalise each sequence volume inside
the brain, cut axial slices, keep those with enough brain (default >= 15 % of the slice) or, optionally, only
tumour slices, pad to a square and resize, stack the sequences and the label as the last channel. Subjects are
split into train / holdout / test by a seeded permutation, never slices of one subject into two splits.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
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
from synthgate.data.config import IngestConfig, Normalisation, OnError, SliceSelection
from synthgate.data.geometry import Geometry, slice_geometry
from synthgate.data.imageset import ImageSet, Skipped
from synthgate.data.labels import BRATS2021, LabelMap
from synthgate.data.slicing import normalise_volume, slice_subject
from synthgate.data.store import StoreWriter
from synthgate.errors import InputError
from synthgate.runtime import Progress

logger = logging.getLogger(__name__)

SPLITS = ("train", "holdout", "test")


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


def _store_meta(plan: CohortPlan, config: IngestConfig, geometry: Geometry | None) -> dict[str, Any]:
    return {
        "label_channel": len(plan.sequences) if plan.has_label else None,
        "label_map": None if plan.label_map is None else plan.label_map.to_json(),
        "normalisation": str(config.normalisation),
        "size": config.size,
        **(geometry.to_meta() if geometry is not None else {}),
        "ingest": {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, StrEnum) else v)
                   for k, v in asdict(config).items()},
    }


@dataclass(frozen=True)
class SlicedSubject:
    """One subject's slices: N x C x H x W images, the axial index of each, and where they lie."""

    subject: str
    images: np.ndarray
    slice_index: np.ndarray
    geometry: Geometry

    @property
    def ids(self) -> list[str]:
        return [f"{self.subject}_z{k:03d}" for k in self.slice_index]


def iter_sliced_subjects(plan: CohortPlan, config: IngestConfig, on_error: OnError, skipped: list[Skipped],
                         progress: Progress | None = None) -> Iterator[SlicedSubject]:
    """Load, validate and slice the plan's subjects one at a time.

    An invalid subject raises, or with ``on_error="skip"`` is appended to ``skipped`` and passed over.
    """
    for i, sf in enumerate(plan.subjects):
        try:
            vol = load_subject(sf, plan.label_map) if plan.label_map else _load_unlabelled(sf)
        except InputError as e:
            if on_error is not OnError.SKIP:
                raise
            logger.warning("skipping subject %s: %s", sf.subject, e)
            skipped.append(Skipped(str(sf.folder), str(e)))
            continue
        img, z = slice_subject(vol, plan.sequences, config, plan.has_label)
        shape = next(iter(vol.sequences.values())).shape
        yield SlicedSubject(sf.subject, img, z, slice_geometry(shape, vol.spacing, config.size))
        if progress:
            progress("ingest", i + 1, len(plan.subjects))


def slice_cohort(cohort: Path, config: IngestConfig, on_error: OnError = OnError.RAISE,
                 progress: Progress | None = None) -> ImageSet:
    """Slice a whole cohort into one in-memory set (no split); for ingest into stores use :func:`ingest_cohort`."""
    plan = plan_cohort(Path(cohort), config)
    skipped: list[Skipped] = []
    parts = list(iter_sliced_subjects(plan, config, on_error, skipped, progress))
    c = len(plan.channels)
    images = (np.concatenate([p.images for p in parts]) if parts
              else np.zeros((0, c, config.size, config.size), np.float32))
    meta = _store_meta(plan, config, _cohort_geometry([(p.subject, p.geometry) for p in parts]))
    return ImageSet(
        images=images, ids=tuple(i for p in parts for i in p.ids),
        subjects=tuple(p.subject for p in parts for _ in p.slice_index), channels=plan.channels,
        label_channel=meta["label_channel"], label_map=plan.label_map,
        slice_index=np.concatenate([p.slice_index for p in parts]).astype(np.int64) if parts else np.zeros(0, np.int64),
        sources=("real",) * len(images),
        meta={k: v for k, v in meta.items() if k not in ("label_channel", "label_map")},
        skipped=tuple(skipped),
    )


def _load_unlabelled(sf: SubjectFiles) -> SubjectVolumes:
    return load_subject(sf, BRATS2021)


def _cohort_geometry(parts: list[tuple[str, Geometry]]) -> Geometry | None:
    """The geometry of the first subject; a warning names any subject whose pixels differ by more than 1 %."""
    if not parts:
        return None
    first, g0 = parts[0]
    for subject, g in parts[1:]:
        if g.axes != g0.axes or not np.allclose(g.spacing, g0.spacing, rtol=0.01):
            logger.warning("subject %s has %s mm pixels but %s has %s mm; the store records those of %s",
                           subject, [round(v, 3) for v in g.spacing], first, [round(v, 3) for v in g0.spacing], first)
    return g0


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
                  progress: Progress | None = None) -> IngestResult:
    """Ingest ``cohort`` into ``out/{train,holdout,test}`` slice stores plus ``out/ingest.json``.

    Subjects stream one at a time, so memory holds one subject. The output folder appears whole or not at all.
    Splits that receive no subject (or whose subjects were all skipped) are not written; ``ingest.json`` lists
    the subjects written in each split and, apart, the skipped ones.

    Raises:
        InputError: invalid cohort (exit 5); with ``on_error="skip"`` invalid subjects are skipped and listed.
        UsageError: bad settings, or ``out`` exists without ``overwrite``.
    """
    t0 = time.perf_counter()
    config = config or IngestConfig()
    mode = OnError.parse(on_error)
    cohort, out = Path(cohort), Path(out)
    plan = plan_cohort(cohort, config)
    assignment = split_subjects([s.subject for s in plan.subjects], config.split, config.seed)
    split_of = {s: name for name, subs in assignment.items() for s in subs}
    skipped: list[Skipped] = []
    counts: dict[str, dict[str, int]] = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writers = {name: StoreWriter(tmp / name, plan.channels, config.dtype) for name in SPLITS if assignment[name]}
        kept_subjects: dict[str, set[str]] = {name: set() for name in writers}
        geometries: list[tuple[str, Geometry]] = []
        for part in iter_sliced_subjects(plan, config, mode, skipped, progress):
            geometries.append((part.subject, part.geometry))
            name = split_of[part.subject]
            writers[name].append(part.images, part.ids, part.subject, part.slice_index, "real")
            kept_subjects[name].add(part.subject)
        if len(skipped) == len(plan.subjects):
            raise InputError(f"{cohort}: every subject was invalid and skipped; nothing to ingest")
        for name in [n for n in writers if not kept_subjects[n]]:  # every subject of the split was skipped
            writers.pop(name).discard()
            logger.warning("split %s: all its subjects were skipped; not written", name)
        meta = _store_meta(plan, config, _cohort_geometry(geometries))
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
        record["splits"] = {name: [x for x in subs if x in kept_subjects.get(name, ())]
                            for name, subs in assignment.items()}
        (tmp / "ingest.json").write_text(json.dumps(record, indent=2) + "\n")
    return result


__all__ = [
    "IngestConfig", "IngestResult", "Normalisation", "SliceSelection", "ingest_cohort", "normalise_volume",
    "plan_cohort", "slice_cohort", "slice_subject", "split_subjects",
]
