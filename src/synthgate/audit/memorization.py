"""The memorization audit: does any synthetic image reproduce a training image?

For every synthetic image: the exact top-k training images by channel-averaged Pearson r (mirrors included),
then a shift/rotation/zoom-tolerant re-rank of candidates; the best score is compared with a threshold
calibrated on unseen images (holdout, or other training subjects); flagged copies are counted per training
subject. See :mod:`synthgate.audit.search`, :mod:`synthgate.audit.robust`, :mod:`synthgate.audit.calibration`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from synthgate.audit.calibration import Calibration, CalibrationMethod, TwoSampleTest, calibrate, compare_to_null
from synthgate.audit.features import feature_channels
from synthgate.audit.matching import MatchSettings, SetScores, TrainIndex, score_queries
from synthgate.audit.robust import make_warps
from synthgate.audit.search import Backend
from synthgate.data.imageset import ImageSet, check_compatible, require_nonempty
from synthgate.errors import InputError, UsageError
from synthgate.runtime import versions

logger = logging.getLogger(__name__)


class Transform(StrEnum):
    """Geometric transforms the search tolerates (intensity changes, noise, blur, blends need no search)."""

    HFLIP = "hflip"
    SHIFT = "shift"
    ROTATE = "rotate"
    ZOOM = "zoom"


ALL_TRANSFORMS = (Transform.HFLIP, Transform.SHIFT, Transform.ROTATE, Transform.ZOOM)


@dataclass(frozen=True)
class MemorizationConfig:
    """Settings of the memorization audit.

    Attributes:
        k: exact neighbours kept per synthetic image (>= 1; default 5).
        quantile: conformal quantile of the null scores used as threshold.
        threshold: explicit threshold (score >= threshold is flagged); overrides the calibration.
        transforms: geometric transforms searched (:class:`Transform`); empty = pixel Pearson only.
        include_label: include the label channel in the similarity.
        max_memory: memory budget in bytes for images, features and scores (the training set streams).
        backend: candidate-search backend (:class:`~synthgate.audit.search.Backend`); results do not depend on it.
        device: torch device for the torch backends.
        max_shift: largest translation searched, as a fraction of the image side.
        rotations: rotation angles searched (degrees).
        scales: zoom factors searched.
        max_null: largest number of training images scored for the subject-disjoint null (seeded sample).
        seed: seed of that sample.
    """

    k: int = 5
    quantile: float = 0.99
    threshold: float | None = None
    transforms: tuple[Transform, ...] = ALL_TRANSFORMS
    include_label: bool = False
    max_memory: int = 2 << 30
    backend: Backend = Backend.FAISS
    device: str = "cpu"
    max_shift: float = 0.12
    rotations: tuple[float, ...] = (-10.0, -5.0, 5.0, 10.0)
    scales: tuple[float, ...] = (0.95, 1.05)
    max_null: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise UsageError(f"--k must be >= 1, got {self.k}")
        if not 0.0 < self.quantile < 1.0:
            raise UsageError(f"--quantile must be in (0, 1), got {self.quantile}")
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold is a Pearson r in [-1, 1], got {self.threshold}")
        if self.max_memory < (16 << 20):
            raise UsageError(f"--max-memory must be at least 16M, got {self.max_memory} bytes")
        if not 0.0 <= self.max_shift <= 0.5:
            raise UsageError(f"max_shift is a fraction of the image side in [0, 0.5], got {self.max_shift}")
        if any(s <= 0 for s in self.scales):
            raise UsageError(f"scales must be positive, got {self.scales}")
        if self.max_null < 1:
            raise UsageError(f"max_null must be >= 1, got {self.max_null}")
        object.__setattr__(self, "transforms", tuple(dict.fromkeys(Transform(t) for t in self.transforms)))
        object.__setattr__(self, "backend", Backend(self.backend))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["transforms"] = [str(t) for t in self.transforms]
        d["backend"] = str(self.backend)
        return d


@dataclass(frozen=True)
class MemorizationResult:
    """Everything the audit found (see :func:`run_memorization_audit`)."""

    config: MemorizationConfig
    synthetic: SetScores
    null: SetScores
    null_name: str  # "holdout" or "train (other subjects)"
    null_ids: tuple[str, ...]
    calibration: Calibration
    flagged: np.ndarray  # bools, one per synthetic image
    train_subjects: tuple[str, ...]
    leaked_subjects: tuple[str, ...]
    test: TwoSampleTest
    counts: dict[str, int]
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def fraction_flagged(self) -> float:
        return float(self.flagged.mean()) if len(self.flagged) else 0.0


def plan_blocks(max_memory: int, n_channels: int, n_features: int, hw: int, flips: bool) -> tuple[int, int]:
    """(training images per block, query images per block) that keep the working set within ``max_memory``.

    Budget: 40 % for query features (+ copies), 40 % for a training block (raw images, float64 work arrays,
    features of images and mirrors, the backend's copy), 20 % for the query x block score matrix.
    """
    m = 2 if flips else 1
    per_query = 4 * n_features * 3 + 4 * n_channels * hw + 8 * n_features
    per_train = 4 * n_channels * hw + 8 * n_features * 2 + m * 4 * n_features * 3
    nq = max(1, int(0.4 * max_memory) // per_query)
    nb = max(1, int(0.4 * max_memory) // per_train)
    # scores: nq x (m nb) float32, twice (matmul output + topk)
    while nq * m * nb * 8 > 0.2 * max_memory and (nb > 1 or nq > 1):
        if nb >= nq:
            nb = max(1, nb // 2)
        else:
            nq = max(1, nq // 2)
    return nb, nq


def run_memorization_audit(
    train: ImageSet,
    synthetic: ImageSet,
    holdout: ImageSet | None,
    config: MemorizationConfig,
    progress: Callable[[str, int, int], None] | None = None,
) -> MemorizationResult:
    """Audit ``synthetic`` for copies of ``train``.

    Args:
        train: the generator's training images (may be a memory-mapped store; streamed in blocks).
        synthetic: the images to audit.
        holdout: real images of subjects not in ``train`` (calibration); ``None`` calibrates on ``train`` itself
            with a subject-disjoint null.
        config: :class:`MemorizationConfig`.
        progress: called with (stage, done, total).

    Returns:
        :class:`MemorizationResult`.

    Raises:
        InputError: an empty set, mismatched channels or size, NaN/Inf images, or no usable null.
    """
    require_nonempty(train, "--train")
    require_nonempty(synthetic, "--synthetic")
    check_compatible(train, synthetic, "--train", "--synthetic")
    if holdout is not None:
        require_nonempty(holdout, "--holdout")
        check_compatible(train, holdout, "--train", "--holdout")
    c, h, w = train.shape
    channels = feature_channels(c, train.label_channel, config.include_label)
    if not channels:
        raise InputError("--train has no image channel to compare (only a label channel)")
    flips = Transform.HFLIP in config.transforms
    nb, nq = plan_blocks(config.max_memory, c, len(channels) * h * w, h * w, flips)
    subjects = train.subject_ids
    code = {s: i for i, s in enumerate(subjects)}
    groups = np.array([code[s] for s in train.subjects], dtype=np.int64)
    index = TrainIndex(train, channels, train.label_channel, flips, nb, groups)
    geometric = {Transform.SHIFT, Transform.ROTATE, Transform.ZOOM} & set(config.transforms)
    warps = make_warps(config.rotations if Transform.ROTATE in geometric else (),
                       config.scales if Transform.ZOOM in geometric else ()) if geometric else ()
    max_shift = round(config.max_shift * max(h, w)) if Transform.SHIFT in geometric else 0
    settings = MatchSettings(config.k, config.backend, config.device, warps, max_shift, nq)
    logger.info("audit: %d train (blocks of %d), %d synthetic (blocks of %d), %d warps, shifts <= %d px",
                len(train), nb, len(synthetic), nq, len(warps), max_shift)

    def stage(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda d, t: progress(name, d, t))

    syn = score_queries(synthetic, index, settings, "--synthetic", progress=stage("synthetic"))
    if holdout is not None:
        null = score_queries(holdout, index, settings, "--holdout", progress=stage("holdout"))
        method, null_name, null_ids = CalibrationMethod.HOLDOUT_QUANTILE, "holdout", holdout.ids
    else:
        if len(subjects) < 2 and config.threshold is None:
            raise InputError(
                "--train holds one subject, so no subject-disjoint null exists; give --holdout or --threshold"
            )
        rows = np.arange(len(train))
        if len(rows) > config.max_null:
            rows = np.sort(np.random.default_rng(config.seed).choice(rows, config.max_null, replace=False))
        if len(subjects) >= 2:
            null = score_queries(train, index, settings, "--train", rows=rows, query_groups=groups,
                                 progress=stage("null"))
        else:
            null = score_queries(train, index, settings, "--train", rows=rows[:0])
        method, null_name = CalibrationMethod.TRAIN_SUBJECT_DISJOINT, "train (other subjects)"
        null_ids = tuple(train.ids[i] for i in rows)
    train_zero = _count_zero_variance(train, channels, nb)
    if train_zero:
        logger.warning("%d training images have zero variance in a compared channel; they cannot be matched",
                       train_zero)
    cal = calibrate(null.score, method, config.quantile, config.threshold)
    flagged = syn.valid & (np.nan_to_num(syn.score, nan=-np.inf) >= cal.threshold)
    leaked = tuple(dict.fromkeys(train.subjects[int(r)] for r in syn.train_row[flagged]))
    test = compare_to_null(syn.score, null.score, null_name)
    counts = {
        "synthetic": len(synthetic),
        "train": len(train),
        "holdout": 0 if holdout is None else len(holdout),
        "train_subjects": len(subjects),
        "flagged": int(flagged.sum()),
        "zero_variance": int((~syn.valid).sum()),
        "train_zero_variance": train_zero,
        "null": int(np.isfinite(null.score).sum()),
        "null_zero_variance": int((~null.valid).sum()),
        "exhaustive_fallbacks": syn.n_fallback + null.n_fallback,
    }
    settings_json = config.to_json() | {
        "channels_compared": [train.channels[i] for i in channels],
        "train_block": nb,
        "query_block": nq,
        "max_shift_px": max_shift,
        "similarity": "mean over channels of Pearson r; best over mirror, shift, rotation and zoom",
    }
    return MemorizationResult(
        config=config, synthetic=syn, null=null, null_name=null_name, null_ids=tuple(null_ids), calibration=cal,
        flagged=flagged, train_subjects=subjects, leaked_subjects=leaked, test=test, counts=counts,
        settings=settings_json, versions=_versions(),
    )


def _count_zero_variance(s: ImageSet, channels: tuple[int, ...], block: int) -> int:
    """Images of ``s`` that no search can match (a compared image channel is constant)."""
    from synthgate.audit.matching import valid_images

    return sum(int((~valid_images(b, channels, s.label_channel)).sum()) for _, b in s.iter_blocks(block))


def _versions() -> dict[str, str | None]:
    return versions("numpy", "scipy", "torch", "faiss")
