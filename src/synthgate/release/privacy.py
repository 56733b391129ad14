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


def pixel_lines(images: np.ndarray, min_bytes: int = 64) -> dict[int, set[bytes]]:
    """Rows and columns (float32 bytes) of every 2D image in ``images`` (... x H x W), by length.

    Constant lines are left out: they match any blank region by chance.
    """
    arr = np.asarray(images, dtype="<f4")
    arr = arr.reshape(-1, *arr.shape[-2:])
    out: dict[int, set[bytes]] = {}
    for img in arr:
        for line in (*img, *img.T):
            if line.std() > 0 and line.nbytes >= min_bytes:
                out.setdefault(line.nbytes, set()).add(np.ascontiguousarray(line).tobytes())
    return out


def find_pixel_lines(data: bytes, lines: dict[int, set[bytes]]) -> bool:
    """True if any of ``lines`` (see :func:`pixel_lines`) occurs in ``data`` at any byte offset."""
    for length, wanted in lines.items():
        for off in range(len(data) - length + 1):
            if data[off : off + length] in wanted:
                return True
    return False
