"""Privacy scans of public artefacts: private strings (real ids, subjects) and training pixels in bytes."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

import numpy as np

from synthgate.release.inputs import AuditInputs, UtilityInputs

MIN_LENGTH = 4  # shorter strings match by chance


def private_strings(audit: AuditInputs, utility: UtilityInputs | None) -> frozenset[str]:
    """Real ids and subjects the audits name: none may appear in a public artefact."""
    found: set[str] = set()
    for m in audit.matches:
        found.update((m.train_id, m.train_subject))
    if utility is not None:
        for mode in (utility.data.get("modes") or {}).values():
            for row in (mode or {}).get("per_subject") or []:
                if isinstance(row, dict) and row.get("subject"):
                    found.add(str(row["subject"]))
    return frozenset(s for s in found if len(s) >= MIN_LENGTH)


def find_private_strings(data: bytes, private: Collection[str]) -> tuple[str, ...]:
    """The private strings that occur in ``data``."""
    return tuple(sorted(s for s in private if s.encode("utf-8") in data))


def scan_files(paths: Iterable[Path], private: Collection[str]) -> dict[str, tuple[str, ...]]:
    """``{file: private strings found}`` for the files that contain any."""
    hits = {}
    for p in paths:
        found = find_private_strings(p.read_bytes(), private)
        if found:
            hits[str(p)] = found
    return hits


def contains_pixels(data: bytes, image: np.ndarray, min_bytes: int = 64) -> bool:
    """True if a row or a column of a 2D ``image``'s float32 pixels occurs verbatim in ``data``.

    Columns matter because NIfTI stores arrays in Fortran order.
    """
    arr = np.asarray(image, dtype="<f4")
    lines = [*arr, *arr.T]
    for line in lines:
        row = np.ascontiguousarray(line)
        b = row.tobytes()
        if len(b) >= min_bytes and row.std() > 0 and b in data:
            return True
    return False
