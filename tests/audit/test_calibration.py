from __future__ import annotations

import math

import numpy as np
import pytest

from synthgate.audit.calibration import (
    SUBJECT_CONFIDENCE,
    CalibrationMethod,
    calibrate,
    calibrate_scores,
    compare_to_null,
    describe,
    subject_bound,
)
from synthgate.errors import InputError, UsageError

HOLDOUT = CalibrationMethod.HOLDOUT_QUANTILE


def test_threshold_is_conformal_order_statistic() -> None:
    null = np.random.default_rng(0).uniform(size=199)
    cal = calibrate(null, HOLDOUT, 0.95)
    rank = math.ceil(200 * 0.95)  # 190th smallest
    assert cal.threshold == np.sort(null)[rank - 1]
    assert cal.expected_false_positive_rate == pytest.approx((200 - rank) / 200)
    assert cal.n_null == 199 and cal.method is HOLDOUT


def test_expected_false_positive_rate_matches_simulation() -> None:
    rng = np.random.default_rng(1)
    hits = []
    for _ in range(400):
        cal = calibrate(rng.normal(size=99), HOLDOUT, 0.9)
        hits.append(float(np.mean(rng.normal(size=200) >= cal.threshold)))
    expected = calibrate(rng.normal(size=99), HOLDOUT, 0.9).expected_false_positive_rate
    assert expected == pytest.approx(0.1)
    assert abs(np.mean(hits) - expected) < 0.01


def test_small_null_uses_maximum_and_reports_its_rate() -> None:
    null = np.array([0.2, 0.5, 0.4, np.nan])
    cal = calibrate(null, HOLDOUT, 0.99)
    assert cal.threshold == 0.5 and cal.n_null == 3
    assert cal.expected_false_positive_rate == pytest.approx(1 / 4)


def test_explicit_threshold() -> None:
    cal = calibrate(np.array([0.1, 0.9, 0.95]), HOLDOUT, 0.99, threshold=0.9)
    assert cal.method is CalibrationMethod.EXPLICIT and cal.threshold == 0.9 and cal.quantile is None
    assert cal.expected_false_positive_rate == pytest.approx(3 / 4)
    assert calibrate(np.array([]), HOLDOUT, 0.99, threshold=0.9).expected_false_positive_rate is None


def test_errors() -> None:
    with pytest.raises(InputError, match="no null score"):
        calibrate(np.array([np.nan]), HOLDOUT, 0.99)
    with pytest.raises(UsageError, match="--quantile"):
        calibrate(np.array([0.5]), HOLDOUT, 1.0)


def test_two_sample_test_direction() -> None:
    rng = np.random.default_rng(2)
    null = rng.normal(0.8, 0.02, 100)
    closer = compare_to_null(rng.normal(0.9, 0.02, 50), null, "holdout")
    same = compare_to_null(rng.normal(0.8, 0.02, 50), null, "holdout")
    assert closer.p_value is not None and closer.p_value < 1e-6 and "evidence of memorization" in closer.interpretation
    assert same.p_value is not None and same.p_value > 0.01 and "no evidence" in same.interpretation
    assert compare_to_null(np.array([]), null, "holdout").p_value is None


def test_describe() -> None:
    d = describe(np.array([1.0, 2.0, 3.0, np.nan]))
    assert d["n"] == 3 and d["mean"] == 2.0 and d["sd"] == 1.0 and d["quantiles"]["0.5"] == 2.0
    assert describe(np.array([np.nan]))["n"] == 0


def test_scores_voting_together_hold_the_family_wise_rate() -> None:
    rng = np.random.default_rng(7)
    cov = [[1.0, 0.5, 0.3], [0.5, 1.0, 0.4], [0.3, 0.4, 1.0]]
    scale = np.array([0.01, 0.1, 0.05])
    shift = np.array([0.95, 0.3, 0.6])
    null = rng.multivariate_normal(np.zeros(3), cov, 2000) * scale + shift
    new = rng.multivariate_normal(np.zeros(3), cov, 20000) * scale + shift
    cals = calibrate_scores({n: null[:, i] for i, n in enumerate("abc")}, CalibrationMethod.HOLDOUT_QUANTILE, 0.99)
    thr = np.array([cals[n].threshold for n in "abc"])
    family = (new >= thr).any(axis=1).mean()
    assert 0.006 < family < 0.014  # one statistic: the rate is 1 - quantile, not three times it
    per_score = [calibrate(null[:, i], CalibrationMethod.HOLDOUT_QUANTILE, 0.99).threshold for i in range(3)]
    assert ((new >= np.array(per_score)).any(axis=1).mean()) > 0.02  # separate thresholds would add up
    single = calibrate_scores({"a": null[:, 0]}, CalibrationMethod.HOLDOUT_QUANTILE, 0.99)["a"]
    assert single == calibrate(null[:, 0], CalibrationMethod.HOLDOUT_QUANTILE, 0.99)


def test_subject_bound_is_the_normal_prediction_bound_of_the_subjects_quantiles() -> None:
    from scipy import stats

    rng = np.random.default_rng(3)
    subjects = np.repeat(np.array(["a", "b", "c", "d"], dtype=object), [30, 40, 50, 60])
    values = rng.normal(size=180) + np.repeat([0.0, 0.5, -0.3, 1.0], [30, 40, 50, 60])
    q = [np.sort(values[subjects == s])[min(n, math.ceil((n + 1) * 0.9)) - 1]
         for s, n in zip("abcd", (30, 40, 50, 60), strict=True)]
    want = np.mean(q) + stats.t.ppf(SUBJECT_CONFIDENCE, 3) * np.std(q, ddof=1) * math.sqrt(1 + 1 / 4)
    assert subject_bound(values, subjects, 0.9) == pytest.approx(want, rel=1e-12)
    cal = calibrate(values, HOLDOUT, 0.9, subjects=subjects.tolist())
    assert cal.subject_bound and cal.threshold == pytest.approx(want) and cal.null_subjects == 4
    assert cal.expected_false_positive_rate == pytest.approx(((values >= want).sum() + 1) / 181)
    assert not calibrate(values, HOLDOUT, 0.9).subject_bound  # without subjects: the slices' quantile


def test_subject_bound_holds_the_rate_for_a_new_subject_where_the_slices_quantile_does_not() -> None:
    """Subjects differ in how alike they are to the training set (a random offset per subject): the pooled slices'
    quantile holds the rate on average over subjects, but a new subject above the average is flagged far more
    often; the subject-level bound keeps most new subjects at or under the rate."""
    rng = np.random.default_rng(5)

    def subject(n: int = 90) -> np.ndarray:
        return rng.normal(rng.normal(0.0, 0.7), 1.0, n)

    pooled_over, bound_over = [], []
    for _ in range(60):
        null = [subject() for _ in range(5)]
        labels = np.repeat(np.arange(5).astype(str), 90).tolist()
        slices = calibrate(np.concatenate(null), HOLDOUT, 0.99).threshold
        bound = calibrate(np.concatenate(null), HOLDOUT, 0.99, subjects=labels).threshold
        new = subject(2000)
        pooled_over.append(np.mean(new >= slices) > 0.01)
        bound_over.append(np.mean(new >= bound) > 0.01)
    assert np.mean(pooled_over) > 0.2 and np.mean(bound_over) < 0.1  # measured: 0.28 and 0.03


def test_correlation_bounds_stay_below_one() -> None:
    rng = np.random.default_rng(6)
    subjects = np.repeat(np.arange(3).astype(str), 40).tolist()
    r = np.tanh(rng.normal(2.0, 0.3, 120) + np.repeat([0.0, 0.3, 0.6], 40))  # 0.9-0.995: a wide spread
    cal = calibrate_scores({"pearson": r}, HOLDOUT, 0.99, subjects=subjects)["pearson"]
    assert cal.subject_bound and r.max() < cal.threshold < 1.0
