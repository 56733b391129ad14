"""Read what the audit stages wrote (docs/contracts.md): the memorization and utility outputs."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthgate.errors import InputError
from synthgate.runtime import read_json

SUMMARY = "summary.json"
MATCHES = "matches.csv"
UTILITY = "utility.json"
UTILITY_FRAGMENT = "utility_fragment.html"
UTILITY_SUBJECT_MAP = "private_subject_map.csv"  # PRIVATE: opaque id -> real test subject
_MATCH_COLUMNS = ("synthetic_id", "train_id", "train_subject", "score", "flagged", "transform")


@dataclass(frozen=True)
class MatchRow:
    """One row of ``matches.csv`` (the private fields stay in memory, never in a public artefact)."""

    synthetic_id: str
    train_id: str
    train_subject: str
    score: float | None
    flagged: bool
    transform: str

    @property
    def zero_variance(self) -> bool:
        return self.transform == "zero-variance" or self.score is None


@dataclass(frozen=True)
class AuditInputs:
    """A memorization audit: ``summary.json`` and ``matches.csv``."""

    path: Path
    summary: Mapping[str, Any]
    matches: tuple[MatchRow, ...]

    @property
    def threshold(self) -> float:
        return float(self.summary["threshold"])

    @property
    def calibration_method(self) -> str:
        return str(self.summary.get("calibration", {}).get("method", "unknown"))


@dataclass(frozen=True)
class UtilityInputs:
    """A utility audit: ``utility.json`` and, when present, the public HTML fragment."""

    path: Path
    data: Mapping[str, Any]
    fragment: str | None

    def real_dice(self, region: str) -> float | None:
        v = (((self.data.get("modes") or {}).get("real") or {}).get("mean") or {}).get(region)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    def ratio(self, region: str) -> float | None:
        v = (self.data.get("ratio") or {}).get(region)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    return read_json(path, f"pass the folder a {what} wrote, or rerun the {what}")


def _parse_bool(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no", ""):
        return False
    raise InputError(f"{where}: flagged = {value!r}, expected true or false")


def read_audit(path: str | os.PathLike[str]) -> AuditInputs:
    """Read a memorization audit folder.

    Raises:
        InputError: a missing file, a missing key or column, or an unreadable value.
    """
    p = Path(path)
    summary = _read_json(p / SUMMARY, "'synthgate audit memorization'")
    for key in ("threshold", "counts", "fraction_flagged"):
        if key not in summary:
            raise InputError(f"{p / SUMMARY}: missing key {key!r}; rerun 'synthgate audit memorization'")
    mpath = p / MATCHES
    if not mpath.is_file():
        raise InputError(f"{mpath} is missing; rerun 'synthgate audit memorization'")
    rows: list[MatchRow] = []
    with mpath.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = set(_MATCH_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{mpath}: missing columns {sorted(missing)}")
        for i, r in enumerate(reader, start=2):
            score_text = (r["score"] or "").strip()
            try:
                score = float(score_text) if score_text else None
            except ValueError:
                raise InputError(f"{mpath} line {i}: score {score_text!r} is not a number") from None
            rows.append(
                MatchRow(
                    synthetic_id=r["synthetic_id"],
                    train_id=r["train_id"] or "",
                    train_subject=r["train_subject"] or "",
                    score=score,
                    flagged=_parse_bool(r["flagged"] or "", f"{mpath} line {i}"),
                    transform=r["transform"] or "",
                )
            )
    return AuditInputs(path=p, summary=summary, matches=tuple(rows))


def read_utility(path: str | os.PathLike[str]) -> UtilityInputs:
    """Read a utility audit folder (``utility.json``, optional ``utility_fragment.html``)."""
    p = Path(path)
    data = _read_json(p / UTILITY, "'synthgate audit utility'")
    if "ratio" not in data:
        raise InputError(f"{p / UTILITY}: missing key 'ratio'; rerun 'synthgate audit utility'")
    frag = p / UTILITY_FRAGMENT
    return UtilityInputs(path=p, data=data, fragment=frag.read_text(encoding="utf-8") if frag.is_file() else None)
