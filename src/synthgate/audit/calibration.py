"""Calibrating the memorization threshold and comparing score distributions.

The null distribution is the best-match score of images that were *not* used for training: each holdout image
against the training set, or, without a holdout, each training image against the training images of *other*
subjects. The threshold is the conformal ``quantile`` of the null: with ``n`` null scores it is the
``ceil((n + 1) q)``-th smallest, so that a new unseen image scores at or above it with probability at most
``1 - q`` (``(n + 1 - rank) / (n + 1)`` for continuous scores), the reported expected false-positive rate.
With fewer than ``1 / (1 - q) - 1`` null scores the threshold is the null's maximum and the rate ``1 / (n + 1)``.

Slices of one patient are not exchangeable with another's: patients differ in how alike they are to the training
set. With null images of several subjects, the threshold is therefore also at least a **subject-level bound**:
each subject's own conformal ``quantile``, and a one-sided normal prediction bound (confidence
:data:`SUBJECT_CONFIDENCE`) for that quantile in a new subject, ``mean + t(K - 1) sd sqrt(1 + 1 / K)`` over the
``K`` subjects. On the first benchmark's 5 BRATS patients (4 subject splits), a threshold from one holdout
patient let 5-48 % of another patient's slices through, and the highest of four null patients' own quantiles
still 0-5 %; the bound let none through there, and 1 of 90 on an eighth split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

from synthgate.errors import InputError, UsageError

MAX_NULL_THRESHOLD = 0.9999  # a null this close to 1 holds copies: it would flag nothing
SUBJECT_CONFIDENCE = 0.9  # of the subject-level bound: a new subject's quantile stays below it this often
MIN_HOLDOUT_SUBJECTS = 10  # below this, the training subjects join the null (each against the others)
MAX_FISHER_R = 1 - 1e-6  # correlations are clipped here before Fisher's transform (atanh = 7.25)


class CalibrationMethod(StrEnum):
    """How the threshold was set."""

    HOLDOUT_QUANTILE = "holdout-quantile"
    HOLDOUT_AND_TRAIN = "holdout+train-subject-disjoint"  # a holdout of few subjects, pooled with the training null
    TRAIN_SUBJECT_DISJOINT = "train-subject-disjoint"
    EXPLICIT = "explicit"


@dataclass(frozen=True)
class Calibration:
    """The threshold and how it was obtained (``score >= threshold`` is flagged)."""

    method: CalibrationMethod
    threshold: float
    quantile: float | None
    n_null: int
    expected_false_positive_rate: float | None
    null_subjects: int = 0  # subjects of the subject-level bound (0: none applied)
    subject_bound: bool = False  # the subject-level bound, not the slices' quantile, set the threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "method": str(self.method),
            "quantile": self.quantile,
            "n_null": self.n_null,
            "expected_false_positive_rate": self.expected_false_positive_rate,
            "null_subjects": self.null_subjects,
            "subject_bound": self.subject_bound,
            "subject_confidence": SUBJECT_CONFIDENCE if self.null_subjects > 1 else None,
        }


def calibrate(
    null_scores: np.ndarray, method: CalibrationMethod, quantile: float, threshold: float | None = None,
    subjects: Sequence[str] | None = None, correlations: bool = False,
) -> Calibration:
    """Threshold from the null scores (or the explicit ``threshold``).

    Args:
        null_scores: best-match scores of unseen images (finite values are used).
        method: the null's origin; ignored when ``threshold`` is given.
        quantile: the conformal quantile in (0, 1).
        threshold: an explicit threshold; its expected false-positive rate is the null's fraction at or above it.
        subjects: each null score's subject; with two or more, the threshold is at least the subject-level bound
            (:func:`subject_bound`). ``None`` where each image is its own subject.
        correlations: the scores are correlations: the bound is computed on Fisher's scale, so it stays below 1.

    Raises:
        UsageError: ``quantile`` outside (0, 1) or a non-finite threshold.
        InputError: no null score and no explicit threshold.
    """
    if not 0.0 < quantile < 1.0:
        raise UsageError(f"--quantile must be in (0, 1), got {quantile}")
    finite = np.isfinite(null_scores)
    null = np.sort(np.asarray(null_scores, dtype=np.float64)[finite])
    n = len(null)
    if threshold is not None:
        if not math.isfinite(threshold):
            raise UsageError(f"--threshold must be a finite number, got {threshold}")
        fpr = float((null >= threshold).sum() + 1) / (n + 1) if n else None
        return Calibration(CalibrationMethod.EXPLICIT, float(threshold), None, n, fpr)
    if n == 0:
        raise InputError(
            "no null score to calibrate the threshold (holdout empty or every image zero-variance); "
            "give --holdout with usable images or an explicit --threshold"
        )
    thr = _conformal_quantile(null, quantile)
    # a new exchangeable score exceeds thr when its rank among the n + 1 scores is above every null score <= thr
    at_or_below = int(np.searchsorted(null, thr, side="right"))
    fpr = (n + 1 - at_or_below) / (n + 1)
    groups = np.asarray(subjects if subjects is not None else [None] * len(finite), dtype=object)[finite]
    k = len(set(groups.tolist())) if subjects is not None else 0
    if k < 2:
        return Calibration(method, thr, quantile, n, float(fpr))
    raw = np.asarray(null_scores, dtype=np.float64)[finite]
    bound = subject_bound(fisher(raw) if correlations else raw, groups, quantile)
    bound = float(np.tanh(bound)) if correlations else bound
    if bound <= thr:
        return Calibration(method, thr, quantile, n, float(fpr), null_subjects=k)
    at_or_above = n - int(np.searchsorted(null, bound, side="left"))
    return Calibration(method, bound, quantile, n, (at_or_above + 1) / (n + 1), null_subjects=k, subject_bound=True)


def _conformal_quantile(sorted_values: np.ndarray, quantile: float) -> float:
    """The ``ceil((n + 1) quantile)``-th smallest of n sorted values (the largest when there are too few)."""
    n = len(sorted_values)
    return float(sorted_values[min(n, math.ceil((n + 1) * quantile)) - 1])


def subject_bound(values: np.ndarray, subjects: np.ndarray, quantile: float) -> float:
    """A one-sided normal prediction bound, at :data:`SUBJECT_CONFIDENCE`, for a new subject's conformal
    ``quantile`` of ``values``, from the K >= 2 subjects' own quantiles: ``mean + t(K - 1) sd sqrt(1 + 1 / K)``.

    Why: an unseen patient's slices share how alike that patient is to the training set, so the slices' pooled
    quantile holds the rate averaged over patients, not for the next patient. The bound carries the spread
    between the patients seen to the one not seen; with few subjects it is wide, as it should be.
    """
    from scipy import stats

    per_subject = np.array([_conformal_quantile(np.sort(values[subjects == s]), quantile)
                            for s in dict.fromkeys(subjects.tolist())])
    k = len(per_subject)
    spread = float(np.std(per_subject, ddof=1)) * math.sqrt(1 + 1 / k)
    return float(per_subject.mean() + stats.t.ppf(SUBJECT_CONFIDENCE, k - 1) * spread)


def calibrate_scores(
    null: dict[str, np.ndarray], method: CalibrationMethod, quantile: float, threshold: float | None = None,
    subjects: Sequence[str] | None = None,
) -> dict[str, Calibration]:
    """Thresholds for several scores that vote together (an image is flagged when any score reaches its own),
    holding the family-wise false-positive rate at ``1 - quantile``.

    Each score is standardised on its null after Fisher's transform (``z = (atanh(s) - mean) / sd``); the
    statistic of an image is its largest z over the scores, and the conformal ``quantile`` of the null images'
    largest z is the common level ``z*``. Score ``s`` then flags at ``tanh(mean_s + z* sd_s)``. Unlike one
    threshold per score (a union of tests, whose false-positive rates add up), this is one calibrated statistic:
    its rate is that of :func:`calibrate`. With one score it is :func:`calibrate` itself. ``threshold``
    (explicit) applies to a single score only.

    Args:
        null: score name -> the null images' values (same images, same order; NaN where not computed).
        subjects: the null images' subjects (see :func:`calibrate`).
    """
    names = list(null)
    if len(names) == 1 or threshold is not None:
        return _sane({names[0]: calibrate(null[names[0]], method, quantile, threshold, subjects, True)}, quantile)
    mean, sd = standardisation(null)
    level = calibrate(largest_z(null, mean, sd), method, quantile, subjects=subjects)
    return _sane({
        n: replace(level, threshold=float(np.tanh(mean[i] + level.threshold * sd[i])))
        for i, n in enumerate(names)
    }, quantile)


def _sane(cals: dict[str, Calibration], quantile: float) -> dict[str, Calibration]:
    """Refuse a calibrated similarity threshold >= :data:`MAX_NULL_THRESHOLD`: the null images match the training
    set (near) exactly, so the threshold would flag no copy and silently turn the audit off."""
    for name, cal in cals.items():
        if cal.method is not CalibrationMethod.EXPLICIT and cal.threshold >= MAX_NULL_THRESHOLD:
            raise InputError(
                f"the {name} threshold calibrated on the null (quantile {quantile}) is {cal.threshold:.6f}: the "
                "null images match the training set (near) exactly, so no copy could ever be flagged; check that "
                "--holdout holds other subjects than --train, or give an explicit --threshold"
            )
    return cals


def fisher(scores: np.ndarray) -> np.ndarray:
    """Fisher's transform ``atanh(r)`` of correlation scores, clipped to +-:data:`MAX_FISHER_R` so that an exact
    copy stays finite.

    Why: every score is a correlation, and correlations crowd against 1. On the raw scale a perfect partial copy
    (1.0) stood only about 4 null standard deviations above natural pairs (0.68 +- 0.08), no further than the
    tail of an unseen patient's whole-image scores, so the largest z could not tell them apart. On Fisher's scale
    the sampling spread of r is about constant, and what a copy shares counts as much near 1 as lower down.
    """
    return np.arctanh(np.clip(np.asarray(scores, dtype=np.float64), -MAX_FISHER_R, MAX_FISHER_R))


def standardisation(null: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sd) of each score's finite null values on Fisher's scale (:func:`fisher`; sd 1 with fewer than
    two)."""
    stack = [fisher(v) for v in null.values()]
    mean = np.array([np.mean(r[np.isfinite(r)]) if np.isfinite(r).any() else 0.0 for r in stack])
    sd = np.array([np.std(r[np.isfinite(r)], ddof=1) if np.isfinite(r).sum() > 1 else 1.0 for r in stack])
    return mean, np.where(sd > 0, sd, 1e-12)


def largest_z(values: dict[str, np.ndarray], mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Each image's largest standardised score on Fisher's scale (:func:`standardisation`; NaN where no score was
    computed): the statistic the scores vote with."""
    stack = np.stack([fisher(v) for v in values.values()])
    z = (stack - mean[:, None]) / sd[:, None]
    finite = np.isfinite(z)
    return np.where(finite.any(axis=0), np.where(finite, z, -np.inf).max(axis=0), np.nan)


def describe(scores: np.ndarray) -> dict[str, Any]:
    """n, mean, sd and quantiles of the finite scores (for summary.json)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return {"n": 0, "mean": None, "sd": None, "quantiles": {}}
    qs = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
    return {
        "n": len(s),
        "mean": float(s.mean()),
        "sd": float(s.std(ddof=1)) if len(s) > 1 else 0.0,
        "quantiles": {f"{q:g}": float(np.quantile(s, q)) for q in qs},
    }


@dataclass(frozen=True)
class TwoSampleTest:
    """One-sided Mann-Whitney U test: are synthetic->train scores larger than null->train scores?"""

    name: str
    statistic: float | None
    p_value: float | None
    alternative: str
    interpretation: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "alternative": self.alternative,
            "interpretation": self.interpretation,
        }


def compare_to_null(synthetic: np.ndarray, null: np.ndarray, null_name: str, alpha: float = 0.05) -> TwoSampleTest:
    """Mann-Whitney U test, alternative: synthetic scores stochastically greater than the null's."""
    from scipy.stats import mannwhitneyu

    a = np.asarray(synthetic, dtype=np.float64)
    b = np.asarray(null, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    name = "mann-whitney-u"
    if len(a) == 0 or len(b) == 0:
        return TwoSampleTest(name, None, None, "greater", "not run: a sample is empty")
    res = mannwhitneyu(a, b, alternative="greater")
    p = float(res.pvalue)
    if p < alpha:
        text = (f"synthetic images are closer to the training data than {null_name} images are "
                f"(p = {p:.3g} < {alpha}): evidence of memorization")
    else:
        text = (f"no evidence that synthetic images are closer to the training data than {null_name} images "
                f"(p = {p:.3g})")
    return TwoSampleTest(name, float(res.statistic), p, "greater", text)
