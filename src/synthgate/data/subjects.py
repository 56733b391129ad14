"""Subjects for image-folder inputs: a CSV map (id -> subject) or a pattern over the ids.

A folder of image files says nothing about which patient each image comes from, so its reader counts every
image as its own subject and marks the set so (:data:`PER_IMAGE`). That is wrong wherever subjects are the unit:
the memorization audit counts leaked *training subjects*, the holdout must not share subjects with training, and
the utility audit scores Dice per test subject. ``--subjects FILE.csv`` (columns ``id, subject``) or
``--subject-pattern REGEX`` (a named group ``subject``, searched in each id) groups the images again; both are
applied here, once, by :func:`apply_subjects`.

The set's ``meta["subjects"]`` records where its subjects came from (it survives a slice store round trip):
``"per-image"`` (a folder without a map), ``"csv"`` or ``"pattern"``; absent when the set carries its own
subjects (a slice store from ingest, a BraTS folder).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from synthgate.data.imageset import ImageSet
from synthgate.errors import InputError, UsageError

logger = logging.getLogger(__name__)

SUBJECTS_KEY = "subjects"  # key of ImageSet.meta that records where the subjects came from
CSV_COLUMNS = ("id", "subject")


class SubjectSource(StrEnum):
    """Where a set's subjects came from (``meta["subjects"]``)."""

    PER_IMAGE = "per-image"  # a folder without a map: each image is its own subject
    CSV = "csv"
    PATTERN = "pattern"
    SET = "set"  # the set carries them (slice store, BraTS folder)


PER_IMAGE = SubjectSource.PER_IMAGE


def subject_source(s: ImageSet) -> SubjectSource:
    """Where the subjects of ``s`` came from (:class:`SubjectSource`)."""
    value = s.meta.get(SUBJECTS_KEY)
    return SubjectSource(value) if value in set(SubjectSource) else SubjectSource.SET


def per_image_subjects(s: ImageSet) -> bool:
    """True when every image of ``s`` counts as its own subject because nothing said otherwise."""
    return subject_source(s) is SubjectSource.PER_IMAGE


@dataclass(frozen=True)
class SubjectMap:
    """The subjects of image ids, from a CSV table or a regular expression (exactly one).

    Attributes:
        table: id -> subject, read from ``--subjects``.
        pattern: compiled ``--subject-pattern`` with a named group ``subject``.
        origin: the CSV path or the pattern text, for messages.
    """

    table: Mapping[str, str] | None = None
    pattern: re.Pattern[str] | None = None
    origin: str = ""

    def __post_init__(self) -> None:
        if (self.table is None) == (self.pattern is None):
            raise UsageError("a subject map takes exactly one of a table (--subjects) or a pattern (--subject-pattern)")

    @property
    def source(self) -> SubjectSource:
        return SubjectSource.CSV if self.table is not None else SubjectSource.PATTERN

    def subject_of(self, image_id: str, name: str) -> str:
        """The subject of ``image_id`` (an image of the set called ``name``).

        Raises:
            InputError: the CSV has no row for the id, or the pattern does not match it.
        """
        if self.table is not None:
            sub = self.table.get(image_id)
            if sub is None:
                raise InputError(f"--subjects {self.origin} has no row for id {image_id!r} of {name}; "
                                 "add a row (id, subject) for every image of the set")
            return sub
        m = self.pattern.search(image_id) if self.pattern is not None else None
        if m is None or not m.group("subject"):
            raise InputError(f"--subject-pattern {self.origin!r} does not match id {image_id!r} of {name}; "
                             "write a pattern whose group 'subject' matches every id of the set")
        return m.group("subject")


def read_subject_csv(path: str | os.PathLike[str]) -> SubjectMap:
    """Read a subject map: a CSV with a header holding the columns ``id`` and ``subject`` (others are ignored).

    Raises:
        InputError: unreadable, a column missing, an empty subject or one id given two subjects.
    """
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [c.strip() for c in reader.fieldnames or ()]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise InputError(f"--subjects {p}: no column {', '.join(map(repr, missing))} in the header "
                                 f"({', '.join(header) or 'empty file'}); the CSV needs the columns id, subject")
            reader.fieldnames = header
            table: dict[str, str] = {}
            for line, row in enumerate(reader, start=2):
                image_id, sub = ((row.get(c) or "").strip() for c in CSV_COLUMNS)
                if not image_id or not sub:
                    raise InputError(f"--subjects {p}, line {line}: an empty id or subject; fill in both columns")
                if table.setdefault(image_id, sub) != sub:
                    raise InputError(f"--subjects {p}, line {line}: id {image_id!r} is given two subjects; "
                                     "give each id one subject")
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"--subjects {p}: cannot read ({type(e).__name__}: {e}); give a CSV file") from None
    return SubjectMap(table=table, origin=str(p))


def compile_subject_pattern(text: str) -> SubjectMap:
    """Compile ``--subject-pattern``.

    Raises:
        UsageError: not a regular expression, or no named group ``subject``.
    """
    try:
        rx = re.compile(text)
    except re.error as e:
        raise UsageError(f"--subject-pattern {text!r} is not a regular expression ({e})") from None
    if "subject" not in rx.groupindex:
        raise UsageError(f"--subject-pattern {text!r} has no named group 'subject'; write e.g. "
                         r"'^(?P<subject>[^_]+)_' to take the id up to the first underscore")
    return SubjectMap(pattern=rx, origin=text)


def subject_map(csv_path: str | os.PathLike[str] | None, pattern: str | None) -> SubjectMap | None:
    """The subject map the options ask for, or ``None`` when neither is given.

    Raises:
        UsageError: both given, or a bad pattern.
        InputError: a bad CSV.
    """
    if csv_path is not None and pattern is not None:
        raise UsageError("give --subjects or --subject-pattern, not both")
    if csv_path is not None:
        return read_subject_csv(csv_path)
    if pattern is not None:
        return compile_subject_pattern(pattern)
    return None


def apply_subjects(s: ImageSet, subjects: SubjectMap | None, name: str) -> ImageSet:
    """``s`` with its subjects taken from ``subjects`` when it has none of its own.

    A set that carries its subjects (a slice store from ingest, a BraTS folder) is returned unchanged: the map
    is for image folders (and stores written from them), whose subjects are unknown.

    Args:
        s: the set.
        subjects: the map, or ``None`` (the set is returned unchanged).
        name: the option that gave the set (``--train``), for messages.

    Raises:
        InputError: an id of ``s`` the map does not cover (the first is named).
    """
    if subjects is None:
        return s
    if not per_image_subjects(s):
        logger.warning("%s carries its own subjects; %s is not applied to it", name,
                       "--subjects" if subjects.table is not None else "--subject-pattern")
        return s
    subs = tuple(subjects.subject_of(i, name) for i in s.ids)
    return replace(s, subjects=subs, meta={**s.meta, SUBJECTS_KEY: str(subjects.source)})
