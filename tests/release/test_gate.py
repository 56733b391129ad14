"""The gate: a pass, and a refusal for each policy rule, with the figure and the policy value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthgate.data.imageset import ImageSet
from synthgate.errors import InputError
from synthgate.release.gate import evaluate_gate
from synthgate.release.inputs import read_audit, read_utility
from synthgate.release.policy import ReleasePolicy

from .conftest import COPY_AT, brute_scores, write_audit, write_utility


def _gate(tmp_path: Path, sets: tuple[ImageSet, ImageSet], policy: ReleasePolicy, utility: bool = True, **kw):  # type: ignore[no-untyped-def]
    train, syn = sets
    audit = read_audit(write_audit(tmp_path / "audit", syn, train, **kw))
    util = read_utility(write_utility(tmp_path / "utility")) if utility else None
    return evaluate_gate(syn.ids, audit, util, policy)


def _failed(decision) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.name for c in decision.failed}


def test_pass_removes_the_flagged_copy(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    d = _gate(tmp_path, sets, ReleasePolicy())
    assert d.released, [c.describe() for c in d.failed]
    assert d.n_flagged == 1 and d.removed_flagged == 1
    assert COPY_AT not in d.keep and len(d.keep) == len(sets[1]) - 1
    assert list(d.keep) == sorted(d.keep)


def test_refuses_without_holdout_calibration(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    d = _gate(tmp_path, sets, ReleasePolicy(), method="train-subject-disjoint")
    assert not d.released and _failed(d) == {"holdout_calibration"}
    assert _gate(
        tmp_path / "b", sets, ReleasePolicy(require_holdout_calibration=False), method="train-subject-disjoint"
    ).released
    pooled = _gate(tmp_path / "c", sets, ReleasePolicy(), method="holdout+train-subject-disjoint")
    assert pooled.released  # a holdout of few subjects, pooled with the training subjects' null, is a holdout


def test_refuses_when_too_many_flagged_before_removal(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    d = _gate(tmp_path, sets, ReleasePolicy(max_fraction_flagged_before_removal=0.01))
    assert _failed(d) == {"fraction_flagged_before_removal"}
    check = d.failed[0]
    assert "1/24" in check.value and "0.01" in check.limit


def test_refuses_flagged_images_left_in(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    d = _gate(tmp_path, sets, ReleasePolicy(remove_flagged=False))
    assert _failed(d) == {"fraction_flagged_released"}
    assert COPY_AT in d.keep and "1/24" in d.failed[0].value
    assert _gate(tmp_path / "b", sets, ReleasePolicy(remove_flagged=False, max_fraction_flagged=0.05)).released


def test_refuses_leaked_subjects(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    d = _gate(tmp_path, sets, ReleasePolicy(max_subjects_leaked=0.1))
    assert _failed(d) == {"subjects_leaked"} and "1/4" in d.failed[0].value


def test_refuses_a_subject_rule_when_each_image_was_its_own_subject(
    tmp_path: Path, sets: tuple[ImageSet, ImageSet]
) -> None:
    per_image = {"subjects_leaked": {"count": 1, "fraction": 0.25, "total": 4, "per_image": True}}
    d = _gate(tmp_path, sets, ReleasePolicy(max_subjects_leaked=0.5), summary_overrides=per_image)
    assert _failed(d) == {"subjects_leaked"} and "--subjects" in d.failed[0].detail  # 0.25 <= 0.5, still refused
    assert _gate(tmp_path / "b", sets, ReleasePolicy(max_subjects_leaked=0.5)).released
    assert _gate(tmp_path / "c", sets, ReleasePolicy(), summary_overrides=per_image).released  # no rule (1.0)


def test_refuses_too_few_images(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    d = _gate(tmp_path, sets, ReleasePolicy(min_images=24))
    assert _failed(d) == {"images_released"} and d.failed[0].value == "23"


@pytest.mark.parametrize("region", ["WT", "TC", "ET"])
def test_refuses_low_utility_per_region(tmp_path: Path, sets: tuple[ImageSet, ImageSet], region: str) -> None:
    train, syn = sets
    ratio: dict[str, float | None] = {"WT": 0.9, "TC": 0.9, "ET": 0.9}
    ratio[region] = 0.5
    audit = read_audit(write_audit(tmp_path / "audit", syn, train))
    d = evaluate_gate(syn.ids, audit, read_utility(write_utility(tmp_path / "u", ratio)), ReleasePolicy())
    assert _failed(d) == {f"utility_ratio_{region}"} and d.failed[0].value == "0.500"
    ratio[region] = None
    d = evaluate_gate(syn.ids, audit, read_utility(write_utility(tmp_path / "u2", ratio)), ReleasePolicy())
    assert _failed(d) == {f"utility_ratio_{region}"} and d.failed[0].value == "not measured"


def test_refuses_missing_utility(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    d = _gate(tmp_path, sets, ReleasePolicy(), utility=False)
    assert _failed(d) == {"utility"}
    assert _gate(tmp_path / "b", sets, ReleasePolicy(require_utility=False), utility=False).released


def test_licence_warns_or_refuses(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    d = _gate(tmp_path, sets, ReleasePolicy(output_licence="cc-by-4.0"))
    assert d.released and any("non-commercial" in w for w in d.warnings)
    d = _gate(tmp_path / "b", sets, ReleasePolicy(output_licence="cc-by-4.0", refuse_on_licence_conflict=True))
    assert _failed(d) == {"licence"}


def test_refusal_lists_every_failure(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    d = _gate(
        tmp_path,
        sets,
        ReleasePolicy(
            max_fraction_flagged_before_removal=0.0,
            min_images=100,
            min_utility_ratio={"WT": 0.95, "TC": 0.8, "ET": 0.8},
        ),
        method="explicit",
    )
    assert _failed(d) == {
        "holdout_calibration",
        "fraction_flagged_before_removal",
        "images_released",
        "utility_ratio_WT",
    }


def test_margin_removal_matches_brute_force(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    train, syn = sets
    scores, _ = brute_scores(syn, train)
    margin = 0.85  # threshold 0.9: remove scores >= 0.05
    d = _gate(tmp_path, sets, ReleasePolicy(removal_margin=margin))
    expected_keep = [i for i in range(len(syn)) if scores[i] < 0.9 - margin - 1e-6]
    assert list(d.keep) == expected_keep
    assert d.removed_margin == len(syn) - 1 - len(expected_keep) > 0


def test_zero_variance_images_are_removed(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    train, syn = sets
    audit_dir = write_audit(tmp_path / "audit", syn, train)
    text = (audit_dir / "matches.csv").read_text().splitlines()
    parts = text[1].split(",")
    parts[3], parts[5] = "", "zero-variance"
    text[1] = ",".join(parts)
    (audit_dir / "matches.csv").write_text("\n".join(text) + "\n")
    d = evaluate_gate(syn.ids, read_audit(audit_dir), read_utility(write_utility(tmp_path / "u")), ReleasePolicy())
    assert d.removed_zero_variance == 1 and 0 not in d.keep
    d = evaluate_gate(
        syn.ids, read_audit(audit_dir), read_utility(tmp_path / "u"), ReleasePolicy(remove_zero_variance=False)
    )
    assert d.removed_zero_variance == 0 and 0 in d.keep


def test_audit_of_another_set_is_an_input_error(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    train, syn = sets
    audit = read_audit(write_audit(tmp_path / "audit", syn, train))
    with pytest.raises(InputError, match="does not match --synthetic"):
        evaluate_gate(syn.ids[:-1], audit, None, ReleasePolicy())


def test_inconsistent_audit_is_an_input_error(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    train, syn = sets
    audit = read_audit(write_audit(tmp_path / "audit", syn, train, summary_overrides={"fraction_flagged": 0.0}))
    with pytest.raises(InputError, match="inconsistent"):
        evaluate_gate(syn.ids, audit, None, ReleasePolicy())


def test_unreadable_audit_files(tmp_path: Path, sets: tuple[ImageSet, ImageSet]) -> None:
    train, syn = sets
    d = write_audit(tmp_path / "audit", syn, train)
    summary = json.loads((d / "summary.json").read_text())
    del summary["threshold"]
    (d / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="threshold"):
        read_audit(d)
    with pytest.raises(InputError, match="missing"):
        read_audit(tmp_path / "nowhere")
    with pytest.raises(InputError, match="utility.json"):
        read_utility(tmp_path / "nowhere")
    assert np.isfinite(read_audit(write_audit(tmp_path / "a2", syn, train)).threshold)


@pytest.mark.parametrize("region", ["WT", "TC", "ET"])
def test_refuses_a_weak_real_reference(tmp_path: Path, sets: tuple[ImageSet, ImageSet], region: str) -> None:
    """A ratio of two near-zero Dice values means nothing: the real-trained reference must be good enough."""
    train, syn = sets
    real = {"WT": 0.8, "TC": 0.7, "ET": 0.6}
    real[region] = 0.05
    audit = read_audit(write_audit(tmp_path / "audit", syn, train))
    util = read_utility(write_utility(tmp_path / "u", real=real))
    d = evaluate_gate(syn.ids, audit, util, ReleasePolicy())
    assert _failed(d) == {f"utility_reference_{region}"} and d.failed[0].value == "0.050"
    assert evaluate_gate(syn.ids, audit, util, ReleasePolicy(min_reference_dice=0.05)).released
