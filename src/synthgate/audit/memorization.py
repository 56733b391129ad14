"""The memorization audit: does any synthetic image reproduce a training image?

For every synthetic image: the exact top-k training images by channel-averaged Pearson r (mirrors included),
then a shift/rotation/zoom-tolerant re-rank of candidates, and the structure and partial scores of the best
pairs (window proposals included); the scores are compared with thresholds calibrated on unseen images
(holdout, or other training subjects); flagged copies are counted per training subject. See
:mod:`synthgate.audit.search`, :mod:`synthgate.audit.align`, :mod:`synthgate.audit.windows`,
:mod:`synthgate.audit.calibration`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from synthgate import distributed
from synthgate.audit.backend import Backend, resolve_backend
from synthgate.audit.calibration import (
    MIN_HOLDOUT_SUBJECTS,
    Calibration,
    CalibrationMethod,
    TwoSampleTest,
    calibrate_scores,
    compare_to_null,
    largest_z,
    standardisation,
)
from synthgate.audit.candidates import descriptor_size
from synthgate.audit.features import feature_channels
from synthgate.audit.index import IndexSettings
from synthgate.audit.match import MatchSettings, SetScores, cached_queries, image_queries
from synthgate.audit.plan import plan_memory
from synthgate.audit.shard import build_sharded_index
from synthgate.audit.spread import build_replicated_index, score_spread
from synthgate.audit.transforms import ALL_TRANSFORMS, Transform, make_warps
from synthgate.audit.windows import proposal_dtype, window_bytes
from synthgate.data.imageset import ImageSet, check_compatible, require_nonempty
from synthgate.data.manifest import check_disjoint_content, check_disjoint_names
from synthgate.data.subjects import per_image_subjects
from synthgate.errors import InputError, UsageError
from synthgate.runtime import versions

logger = logging.getLogger(__name__)


class Score(StrEnum):
    """The scores that can flag an image, each calibrated on the null."""

    PEARSON = "pearson"  # whole-image Pearson r after alignment (a copy)
    STRUCTURE = "structure"  # high-pass residuals in the brain (a copy whose outline or intensities changed)
    PARTIAL = "partial"  # the best half-size window (part of the image copied)


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
        backend: candidate-search backend (:class:`~synthgate.audit.backend.Backend`); results do not depend on it.
        device: torch device of the feature cache, the search and the alignment.
        cache_dir: folder for the temporary feature file when the features exceed the memory budget.
        max_shift: largest translation searched, as a fraction of the image side.
        rotations: rotation angles searched (degrees).
        scales: zoom factors searched.
        max_null: largest number of training images scored for the subject-disjoint null (seeded sample).
        pool_null: when the holdout holds fewer than :data:`~synthgate.audit.calibration.MIN_HOLDOUT_SUBJECTS`
            subjects, pool it with the subject-disjoint null of enough training subjects to make up that many
            (at most ``max_null`` images; the calibration then sees the spread between several patients, see
            :mod:`synthgate.audit.calibration`).
        seed: seed of that sample.
        scores: the scores that vote (:class:`Score`): whole-image Pearson r always; ``structure`` and
            ``partial`` (:mod:`synthgate.audit.scores`) by default. They vote together at one family-wise
            false-positive rate (:func:`~synthgate.audit.calibration.calibrate_scores`).
        shard_index: under torchrun, shard the training index over the ranks (:mod:`synthgate.audit.shard`)
            instead of spreading the query blocks (:mod:`synthgate.audit.spread`); the result is the same.
    """

    k: int = 5
    quantile: float = 0.99
    threshold: float | None = None
    transforms: tuple[Transform, ...] = ALL_TRANSFORMS
    include_label: bool = False
    max_memory: int = 2 << 30
    backend: Backend = Backend.TORCH
    device: str = "cpu"
    cache_dir: str | None = None
    max_shift: float = 0.15
    rotations: tuple[float, ...] = (-20.0, -10.0, 10.0, 20.0)
    scales: tuple[float, ...] = (0.87, 1.15)
    max_null: int = 2000
    pool_null: bool = True
    seed: int = 0
    scores: tuple[Score, ...] = (Score.PEARSON, Score.STRUCTURE, Score.PARTIAL)
    shard_index: bool = False

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
        scores = tuple(dict.fromkeys(Score(x) for x in self.scores))
        if Score.PEARSON not in scores:
            scores = (Score.PEARSON, *scores)
        object.__setattr__(self, "scores", scores)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["transforms"] = [str(t) for t in self.transforms]
        d["backend"] = str(self.backend)
        d["scores"] = [str(x) for x in self.scores]
        return d


@dataclass(frozen=True)
class MemorizationResult:
    """Everything the audit found (see :func:`run_memorization_audit`)."""

    config: MemorizationConfig
    synthetic: SetScores
    null: SetScores
    null_name: str  # "holdout" or "train (other subjects)"
    null_ids: tuple[str, ...]
    calibration: Calibration  # of the whole-image score
    flagged: np.ndarray  # bools, one per synthetic image
    train_subjects: tuple[str, ...]
    leaked_subjects: tuple[str, ...]
    test: TwoSampleTest
    counts: dict[str, int]
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage
    calibrations: dict[str, Calibration] = field(default_factory=dict)  # one per score that votes
    flagged_by: tuple[str, ...] = ()  # per synthetic image: the scores at or above their threshold, "+"-joined
    statistic: np.ndarray | None = None  # per synthetic image: what the scores vote with (largest standardised
    # score; the Pearson score when it votes alone), for rankings such as an AUC
    source_row: np.ndarray | None = None  # per synthetic image: the training row named by the first score that
    # flagged it (pearson, structure, partial), -1 when not flagged; its subject is the one counted as leaked

    @property
    def compared_scores(self) -> np.ndarray:
        """The null scores that the two-sample test and the summary's ``holdout_to_train`` describe
        (:func:`compared_null`)."""
        return compared_null(self.null.score, self.counts.get("holdout", 0))

    @property
    def fraction_flagged(self) -> float:
        return float(self.flagged.mean()) if len(self.flagged) else 0.0


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
        check_disjoint_names(train, holdout)
    import time

    c, h, w = train.shape
    channels = feature_channels(c, train.label_channel, config.include_label)
    if not channels:
        raise InputError("--train has no image channel to compare (only a label channel)")
    flips = Transform.HFLIP in config.transforms
    geometric = {Transform.SHIFT, Transform.ROTATE, Transform.ZOOM} & set(config.transforms)
    warps = make_warps(config.rotations if Transform.ROTATE in geometric else (),
                       config.scales if Transform.ZOOM in geometric else ()) if geometric else ()
    max_shift = round(config.max_shift * max(h, w)) if Transform.SHIFT in geometric else 0
    sharded = config.shard_index and distributed.world_size() > 1
    rows_here = -(-len(train) // distributed.world_size()) if sharded else len(train)  # this rank's cache
    partial = Score.PARTIAL in config.scores
    held = (len(train) * 4 * descriptor_size((len(channels), h, w)) if warps else 0,  # gathered whole on every rank
            len(train) * window_bytes((len(channels), h, w), config.device) if partial else 0)
    plan = plan_memory(config.max_memory, c, len(channels), h, w, len(warps), config.k, flips, config.device,
                       rows_here, held)
    backend = resolve_backend(config.backend, config.device)
    refine_free = (Transform.ROTATE in geometric, Transform.ZOOM in geometric, Transform.SHIFT in geometric)
    settings = MatchSettings(config.k, backend, config.device, flips, warps, max_shift, plan.query_block,
                             plan.align_block, refine_free, extra_scores=len(config.scores) > 1,
                             window_candidates=partial)
    subjects = train.subject_ids
    code = {s: i for i, s in enumerate(subjects)}
    groups = np.array([code[s] for s in train.subjects], dtype=np.int64)
    logger.info("audit: %d train, %d synthetic; plan %s; %d warps, shifts <= %d px", len(train), len(synthetic),
                plan, len(warps), max_shift)

    def stage(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda d, t: progress(name, d, t))

    def scored(name: str) -> Callable[[str, int, int], None] | None:
        return None if progress is None else (lambda _step, d, t: progress(name, d, t))

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    build = build_sharded_index if sharded else build_replicated_index
    index_settings = IndexSettings(plan.read_block, plan.cache_budget, config.device, config.cache_dir,
                                   plan.search_block, descriptors=settings.robust, windows=settings.window_candidates)
    with build(train, channels, groups, index_settings, progress=stage("features")) as cache:
        seconds["features"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        syn = score_spread(image_queries(synthetic, channels, plan.query_block, "--synthetic"), len(synthetic),
                            cache, settings, scored("synthetic"))
        seconds["synthetic"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        per_image = per_image_subjects(train) or (holdout is not None and per_image_subjects(holdout))
        if holdout is not None:
            check_disjoint_content(train, holdout)  # the training digests come from the cache's single read
            null = score_spread(image_queries(holdout, channels, plan.query_block, "--holdout"), len(holdout),
                                 cache, settings, scored("holdout"))
            method, null_name, null_ids = CalibrationMethod.HOLDOUT_QUANTILE, "holdout", holdout.ids
            null_subjects = holdout.subjects
            if (config.pool_null and not per_image and len(holdout.subject_ids) < MIN_HOLDOUT_SUBJECTS
                    and len(subjects) >= 2):
                # a few holdout patients say little about the next patient: training subjects join the null
                rows = _pooled_rows(train, MIN_HOLDOUT_SUBJECTS - len(holdout.subject_ids), config)
                null = null.concat(score_spread(cached_queries(cache, rows, plan.query_block), len(rows), cache,
                                                settings, scored("null")))
                method, null_name = CalibrationMethod.HOLDOUT_AND_TRAIN, "holdout and train (other subjects)"
                null_ids += tuple(train.ids[i] for i in rows)
                null_subjects += tuple(train.subjects[i] for i in rows)
        else:
            if len(subjects) < 2 and config.threshold is None:
                raise InputError(
                    "--train holds one subject, so no subject-disjoint null exists; give --holdout or --threshold"
                )
            rows = _null_rows(len(train), config) if len(subjects) >= 2 else np.arange(0)
            null = score_spread(cached_queries(cache, rows, plan.query_block), len(rows), cache, settings,
                                 scored("null"))
            method, null_name = CalibrationMethod.TRAIN_SUBJECT_DISJOINT, "train (other subjects)"
            null_ids = tuple(train.ids[i] for i in rows)
            null_subjects = tuple(train.subjects[i] for i in rows)
        seconds["null"] = time.perf_counter() - t0
        train_zero = int((~cache.valid).sum())
        cache_where = cache.where
    if train_zero:
        logger.warning("%d training images have zero variance in a compared channel; they cannot be matched",
                       train_zero)
    votes = (Score.PEARSON,) if config.threshold is not None else config.scores
    values = {Score.PEARSON: (syn.score, null.score, syn.train_row), Score.STRUCTURE:
              (syn.structure, null.structure, syn.structure_row), Score.PARTIAL: (syn.partial, null.partial,
                                                                                  syn.partial_row)}
    calibrations = calibrate_scores({str(v): values[v][1] for v in votes}, method, config.quantile, config.threshold,
                                    None if per_image else null_subjects)
    cal = calibrations[Score.PEARSON]
    if len(votes) > 1:
        mean, sd = standardisation({str(v): values[v][1] for v in votes})
        statistic = largest_z({str(v): values[v][0] for v in votes}, mean, sd)
    else:
        statistic = np.asarray(syn.score, dtype=np.float64)
    hits = np.stack([syn.valid & (np.nan_to_num(values[v][0], nan=-np.inf) >= calibrations[str(v)].threshold)
                     for v in votes])
    flagged: np.ndarray = np.asarray(hits.any(axis=0), dtype=bool)
    flagged_by = tuple("+".join(str(v) for v, h in zip(votes, hits[:, i], strict=True) if h)
                       for i in range(len(flagged)))
    source = np.full(len(flagged), -1)
    for v, h in zip(votes[::-1], hits[::-1], strict=True):  # the first score that flagged names the source
        source = np.where(h, values[v][2], source)
    leaked = tuple(dict.fromkeys(train.subjects[int(r)] for r in source[flagged]))
    test = compare_to_null(syn.score, compared_null(null.score, len(holdout) if holdout is not None else 0),
                           "holdout" if holdout is not None else null_name)
    counts = {
        "synthetic": len(synthetic),
        "train": len(train),
        "holdout": 0 if holdout is None else len(holdout),
        "holdout_subjects": 0 if holdout is None else len(holdout.subject_ids),
        "train_subjects": len(subjects),
        "flagged": int(flagged.sum()),
        "zero_variance": int((~syn.valid).sum()),
        "train_zero_variance": train_zero,
        "null": int(np.isfinite(null.score).sum()),
        "null_zero_variance": int((~null.valid).sum()),
        "exhaustive_fallbacks": syn.n_fallback + null.n_fallback,
        "pairs_scored_exactly": syn.n_exact + null.n_exact,
    }
    settings_json = config.to_json() | {
        "backend": str(backend),
        "channels_compared": [train.channels[i] for i in channels],
        "plan": plan.to_json(),
        "feature_cache": cache_where,
        "max_shift_px": max_shift,
        "warps": len(warps),
        "window_proposals": str(proposal_dtype(config.device)).removeprefix("torch.") if partial else None,
        "similarity": "mean over channels of Pearson r; best over mirror, shift, rotation and zoom",
        "scores_combined": "an image is flagged when any score reaches its threshold; the thresholds share one "
                           "standardised level on Fisher's scale (tanh(null mean + z * null sd) of atanh(score)), "
                           "calibrated on the null's largest z (and, with several null subjects, at least a "
                           "bound for a new subject's quantile)",
    }
    for name, sc in (("synthetic", syn), ("null", null)):
        for step, sec in sc.seconds.items():
            seconds[f"{name}_{step}"] = sec
    return MemorizationResult(
        config=config, synthetic=syn, null=null, null_name=null_name, null_ids=tuple(null_ids), calibration=cal,
        flagged=flagged, train_subjects=subjects, leaked_subjects=leaked, test=test, counts=counts,
        settings=settings_json, versions=_versions(), seconds=seconds, calibrations=calibrations,
        flagged_by=flagged_by, statistic=statistic, source_row=source,
    )


def compared_null(null_scores: np.ndarray, n_holdout: int) -> np.ndarray:
    """The holdout's part of the null (its first ``n_holdout`` scores), or the whole null without a holdout.

    Why: training subjects pooled into the null for calibration meet one subject fewer than an unseen image does,
    so their scores are biased low; the comparison of synthetic with unseen real images keeps to the holdout.
    """
    return null_scores[:n_holdout] if n_holdout else null_scores


def _null_rows(n_train: int, config: MemorizationConfig) -> np.ndarray:
    """The training rows of the subject-disjoint null: all, or a seeded sample of ``config.max_null``."""
    return _at_most(np.arange(n_train), config.max_null, np.random.default_rng(config.seed))


def _pooled_rows(train: ImageSet, n_subjects: int, config: MemorizationConfig) -> np.ndarray:
    """The training rows pooled with a holdout of few subjects: every image of ``n_subjects`` training subjects
    (a seeded choice; all of them where there are fewer), at most ``config.max_null`` (a seeded sample).

    Why subjects, not images: the calibration needs patients (:func:`~synthgate.audit.calibration.subject_bound`)
    and each patient's own quantile needs its slices; filling the null up to
    :data:`~synthgate.audit.calibration.MIN_HOLDOUT_SUBJECTS` subjects keeps the extra queries few (5 training
    subjects of 100 slices beside a 5-subject holdout, not a 2,000-image sample: the audit took 2.2-2.7x as long).
    """
    rng = np.random.default_rng(config.seed)
    subjects = np.asarray(train.subjects, dtype=object)
    names = list(dict.fromkeys(train.subjects))
    chosen = [names[i] for i in sorted(rng.permutation(len(names))[:n_subjects])]
    return _at_most(np.flatnonzero(np.isin(subjects, np.asarray(chosen, dtype=object))), config.max_null, rng)


def _at_most(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """``rows``, or a sorted sample of ``limit`` of them drawn with ``rng`` where there are more."""
    return np.sort(rng.choice(rows, limit, replace=False)) if len(rows) > limit else rows


def _versions() -> dict[str, str | None]:
    return versions("numpy", "scipy", "torch", "faiss")
