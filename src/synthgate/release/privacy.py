"""Privacy scans of public artefacts: private strings (real ids, subjects) and training pixels in bytes."""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable
from pathlib import Path

import numpy as np

from synthgate.data.imageset import ImageSet
from synthgate.release.inputs import UTILITY_SUBJECT_MAP, AuditInputs, UtilityInputs

MIN_LENGTH = 4  # shorter strings match by chance


def private_strings(audit: AuditInputs, utility: UtilityInputs | None,
                    sets: Iterable[ImageSet | None] = ()) -> frozenset[str]:
    """Every real id, subject and file name the build can see: none may appear in a public artefact.

    Sources: the audit's matches and its binding record (all training and holdout ids and subjects), the utility
    audit's subjects and its private subject map (the test subjects), and the real ``sets`` given to the build.
    """
    found: set[str] = set()
    for m in audit.matches:
        found.update((m.train_id, m.train_subject))
    binding = audit.summary.get("binding")
    for key in ("train", "holdout"):
        rec = binding.get(key) if isinstance(binding, dict) else None
        if isinstance(rec, dict):
            found.update(str(row[0]) for row in rec.get("images") or [] if row)
            found.update(str(x) for x in rec.get("subjects") or [])
    if utility is not None:
        for mode in (utility.data.get("modes") or {}).values():
            for row in (mode or {}).get("per_subject") or []:
                if isinstance(row, dict) and row.get("subject"):
                    found.add(str(row["subject"]))
        subject_map = utility.path / UTILITY_SUBJECT_MAP
        if subject_map.is_file():
            with subject_map.open(newline="", encoding="utf-8") as fh:
                found.update(r.get("subject") or "" for r in csv.DictReader(fh))
    for s in sets:
        if s is not None:
            found.update(s.ids)
            found.update(s.subjects)
    return frozenset(x for x in found if len(x) >= MIN_LENGTH)


def find_private_strings(data: bytes, private: Collection[str]) -> tuple[str, ...]:
    """The private strings that occur in ``data``.

    Strings are grouped by length; a large group is matched by sliding a window over ``data`` and looking each
    window up in a set (linear in ``len(data)`` per length, whatever the number of strings).
    """
    by_len: dict[int, set[bytes]] = {}
    for x in private:
        b = x.encode("utf-8")
        by_len.setdefault(len(b), set()).add(b)
    hits: list[bytes] = []
    for n, group in by_len.items():
        if len(group) <= 32:
            hits.extend(b for b in group if b in data)
        else:
            hits.extend(group.intersection(data[i : i + n] for i in range(len(data) - n + 1)))
    return tuple(sorted(b.decode("utf-8") for b in set(hits)))


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
