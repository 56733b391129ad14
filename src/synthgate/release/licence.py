"""Licence compatibility: is the output licence more permissive than the training data's?

Only the terms that matter for a derived data set are modelled: attribution (BY), non-commercial (NC) and
share-alike (SA). Licences outside the table are "unknown" and always produce a warning.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LicenceTerms:
    """What a licence asks of a user."""

    known: bool
    attribution: bool = False
    non_commercial: bool = False
    share_alike: bool = False


_PERMISSIVE = {
    "cc0-1.0": False,
    "pddl": False,
    "mit": True,
    "apache-2.0": True,
    "odc-by": True,
    "bsd-3-clause": True,
}


def licence_terms(licence: str) -> LicenceTerms:
    """Parse an SPDX-style id (``cc-by-nc-sa-4.0``, ``CC BY-NC 3.0``, ``cc0-1.0``, ``mit``) into its terms."""
    key = licence.strip().lower().replace(" ", "-").replace("_", "-")
    if key in _PERMISSIVE:
        return LicenceTerms(known=True, attribution=_PERMISSIVE[key])
    parts = key.split("-")
    if len(parts) >= 2 and parts[0] == "cc" and parts[1] == "by":
        terms = set(parts[2:])
        if terms - {"nc", "sa", "nd"} - {p for p in terms if p[:1].isdigit()}:
            return LicenceTerms(known=False)
        return LicenceTerms(known=True, attribution=True, non_commercial="nc" in terms, share_alike="sa" in terms)
    return LicenceTerms(known=False)


def licence_conflicts(output: str, training: str) -> tuple[str, ...]:
    """Reasons why releasing under ``output`` may breach ``training``'s terms (empty when none)."""
    out, src = licence_terms(output), licence_terms(training)
    problems: list[str] = []
    if not src.known:
        problems.append(f"training licence {training!r} is not one synthgate knows; check its terms by hand")
    if not out.known:
        problems.append(f"output licence {output!r} is not one synthgate knows; check it against {training!r}")
    if not (src.known and out.known):
        return tuple(problems)
    if src.non_commercial and not out.non_commercial:
        problems.append(
            f"training data is non-commercial ({training}) but the output licence {output} allows commercial use"
        )
    if src.share_alike and not out.share_alike:
        problems.append(f"training data is share-alike ({training}) but the output licence {output} is not")
    if src.attribution and not out.attribution:
        problems.append(f"training data requires attribution ({training}) but the output licence {output} does not")
    return tuple(problems)
