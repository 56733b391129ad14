"""The release gate: evaluate every policy rule on the audit results and decide which images may go out.

:func:`evaluate_gate` is pure: it reads nothing and writes nothing. Every rule yields a :class:`Check` with
the measured figure and the policy value, so a refusal lists all the reasons at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synthgate.audit.calibration import CalibrationMethod
from synthgate.data.labels import REGIONS
from synthgate.errors import GateRefused, InputError
from synthgate.release.checks import Check
from synthgate.release.inputs import AuditInputs, UtilityInputs
from synthgate.release.licence import licence_conflicts
from synthgate.release.policy import ReleasePolicy

logger = logging.getLogger(__name__)

#: Calibrations on real subjects the generator never saw (a holdout of few subjects is pooled with the training
#: subjects' null, :mod:`synthgate.audit.calibration`): the ones the holdout_calibration rule accepts.
HOLDOUT_METHODS = frozenset({str(CalibrationMethod.HOLDOUT_QUANTILE), str(CalibrationMethod.HOLDOUT_AND_TRAIN)})


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict.

    Attributes:
        released: every check passed.
        checks: all checks, passed and failed.
        warnings: findings that do not refuse the release (licence warnings by default).
        keep: indices (into the audited synthetic set) of the images to release, in order.
        removed_flagged / removed_margin / removed_zero_variance: how many images each removal rule dropped.
        n_audited / n_flagged: images audited and flagged before removal.
        real_released: released images that are real, not synthetic (only with ``--allow-real``).
    """

    released: bool
    checks: tuple[Check, ...]
    warnings: tuple[str, ...]
    keep: tuple[int, ...]
    removed_flagged: int
    removed_margin: int
    removed_zero_variance: int
    n_audited: int
    n_flagged: int
    real_released: int = 0  # real images released knowingly (``release build --allow-real``)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": "release" if self.released else "refuse",
            "checks": [c.to_json() for c in self.checks],
            "warnings": list(self.warnings),
            "counts": {
                "audited": self.n_audited,
                "flagged_before_removal": self.n_flagged,
                "removed_flagged": self.removed_flagged,
                "removed_near_threshold": self.removed_margin,
                "removed_zero_variance": self.removed_zero_variance,
                "released": len(self.keep),
                "real_released": self.real_released,
            },
        }


class ReleaseRefused(GateRefused):
    """The gate refused; ``decision`` holds every check (exit 3)."""

    def __init__(self, decision: GateDecision) -> None:
        reasons = "; ".join(c.describe() for c in decision.failed)
        super().__init__(f"release refused, {len(decision.failed)} check(s) failed: {reasons}")
        self.decision = decision


def _frac(x: float) -> str:
    return f"{x:.4f}"


def _check_audit_covers(synthetic_ids: Sequence[str], audit: AuditInputs) -> None:
    audited = [m.synthetic_id for m in audit.matches]
    if len(set(audited)) != len(audited):
        raise InputError(f"{audit.path}/matches.csv lists a synthetic id twice; rerun the audit")
    missing = set(synthetic_ids) - set(audited)
    extra = set(audited) - set(synthetic_ids)
    if missing or extra:
        raise InputError(
            f"the audit in {audit.path} does not match --synthetic: {len(missing)} image(s) not audited, "
            f"{len(extra)} audited id(s) not in the set; rerun 'synthgate audit memorization' on this set"
        )


def evaluate_gate(
    synthetic_ids: Sequence[str],
    audit: AuditInputs,
    utility: UtilityInputs | None,
    policy: ReleasePolicy,
) -> GateDecision:
    """Apply ``policy`` to the audits of the synthetic set whose ids are ``synthetic_ids``.

    Args:
        synthetic_ids: ids of the synthetic set, in store order.
        audit: its memorization audit (must cover exactly these ids).
        utility: its utility audit, or ``None`` when none was run.
        policy: the rules.

    Returns:
        The decision, with the indices of the images to release.

    Raises:
        InputError: the audit was run on another set.
    """
    _check_audit_covers(synthetic_ids, audit)
    by_id = {m.synthetic_id: m for m in audit.matches}
    threshold = audit.threshold
    n = len(synthetic_ids)
    n_flagged = sum(by_id[s].flagged for s in synthetic_ids)
    checks: list[Check] = []

    reported = float(audit.summary["fraction_flagged"])
    if n and abs(reported - n_flagged / n) > 1e-6:
        raise InputError(
            f"{audit.path}/summary.json says fraction_flagged = {reported} but matches.csv flags "
            f"{n_flagged}/{n}; the audit folder is inconsistent, rerun it"
        )

    method = audit.calibration_method
    on_holdout = method in HOLDOUT_METHODS
    checks.append(
        Check(
            "holdout_calibration",
            passed=on_holdout or not policy.require_holdout_calibration,
            value=method,
            limit="a holdout required" if policy.require_holdout_calibration else "not required",
            detail="" if on_holdout else "audit again with --holdout",
            waived=not on_holdout and not policy.require_holdout_calibration,
        )
    )
    before = n_flagged / n if n else 0.0
    checks.append(
        Check(
            "fraction_flagged_before_removal",
            passed=before <= policy.max_fraction_flagged_before_removal,
            value=f"{_frac(before)} ({n_flagged}/{n})",
            limit=f"<= {policy.max_fraction_flagged_before_removal}",
        )
    )
    checks.append(_subjects_check(audit, policy))

    keep: list[int] = []
    rm_flag = rm_margin = rm_zero = 0
    for i, sid in enumerate(synthetic_ids):
        m = by_id[sid]
        if policy.remove_flagged and m.flagged:
            rm_flag += 1
        elif (
            policy.remove_flagged
            and policy.removal_margin > 0
            and m.score is not None
            and m.score >= threshold - policy.removal_margin
        ):
            rm_margin += 1
        elif policy.remove_zero_variance and m.zero_variance:
            rm_zero += 1
        else:
            keep.append(i)
    flagged_after = sum(by_id[synthetic_ids[i]].flagged for i in keep)
    after = flagged_after / len(keep) if keep else 0.0
    checks.append(
        Check(
            "fraction_flagged_released",
            passed=after <= policy.max_fraction_flagged,
            value=f"{_frac(after)} ({flagged_after}/{len(keep)})",
            limit=f"<= {policy.max_fraction_flagged}",
        )
    )
    checks.append(
        Check(
            "images_released",
            passed=len(keep) >= policy.min_images,
            value=str(len(keep)),
            limit=f">= {policy.min_images}",
        )
    )
    checks.extend(_utility_checks(utility, policy))

    warnings: list[str] = []
    conflicts = licence_conflicts(policy.output_licence, policy.training_licence)
    if policy.refuse_on_licence_conflict:
        checks.append(
            Check(
                "licence",
                passed=not conflicts,
                value=policy.output_licence,
                limit=f"compatible with {policy.training_licence}",
                detail="; ".join(conflicts),
            )
        )
    else:
        warnings.extend(conflicts)
    for w in warnings:
        logger.warning("licence: %s", w)

    return GateDecision(
        released=all(c.passed for c in checks),
        checks=tuple(checks),
        warnings=tuple(warnings),
        keep=tuple(keep),
        removed_flagged=rm_flag,
        removed_margin=rm_margin,
        removed_zero_variance=rm_zero,
        n_audited=n,
        n_flagged=n_flagged,
    )


def _subjects_check(audit: AuditInputs, policy: ReleasePolicy) -> Check:
    """The ``max_subjects_leaked`` rule; refused outright when the audit counted each image as its own subject
    (an image folder without ``--subjects``): then the fraction says nothing about patients."""
    leaked = audit.summary.get("subjects_leaked") or {}
    leaked_frac = float(leaked.get("fraction", 0.0) or 0.0)
    value = f"{_frac(leaked_frac)} ({leaked.get('count', 0)}/{leaked.get('total', '?')} subjects)"
    limit = f"<= {policy.max_subjects_leaked}"
    if leaked.get("per_image") and policy.max_subjects_leaked < 1.0:
        return Check("subjects_leaked", passed=False, value=f"{value}, each image its own subject", limit=limit,
                     detail="the audit's training set had no subjects: audit again with --subjects FILE.csv "
                     "or --subject-pattern REGEX, or drop the max_subjects_leaked rule")
    return Check("subjects_leaked", passed=leaked_frac <= policy.max_subjects_leaked, value=value, limit=limit)


def _utility_checks(utility: UtilityInputs | None, policy: ReleasePolicy) -> list[Check]:
    if utility is None:
        if policy.require_utility:
            return [
                Check(
                    "utility",
                    passed=False,
                    value="not measured",
                    limit="a utility audit is required",
                    detail="run 'synthgate audit utility' and pass --utility",
                )
            ]
        return [Check("utility", passed=True, value="not measured", limit="not required (require_utility = false)",
                      waived=True)]
    checks = []
    for region in REGIONS:
        real = utility.real_dice(region)
        checks.append(
            Check(
                f"utility_reference_{region}",
                passed=(real is not None and real >= policy.min_reference_dice) or not policy.require_utility,
                value="not measured" if real is None else f"{real:.3f}",
                limit=f">= {policy.min_reference_dice}",
                detail=""
                if real is not None and real >= policy.min_reference_dice
                else "the real-trained reference is too weak: train the utility audit longer",
                waived=not policy.require_utility and (real is None or real < policy.min_reference_dice),
            )
        )
    for region in REGIONS:
        limit = float(policy.min_utility_ratio.get(region, 0.0))
        ratio = utility.ratio(region)
        if ratio is None:
            checks.append(
                Check(
                    f"utility_ratio_{region}",
                    passed=not policy.require_utility,
                    value="not measured",
                    limit=f">= {limit}",
                    waived=not policy.require_utility,
                )
            )
        else:
            checks.append(
                Check(
                    f"utility_ratio_{region}",
                    passed=ratio >= limit,
                    value=f"{ratio:.3f}",
                    limit=f">= {limit}",
                )
            )
    return checks
