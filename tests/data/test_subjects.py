"""Subjects for image-folder inputs: the CSV map, the pattern, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthgate.data.readers import load_set
from synthgate.data.store import read_store, write_store
from synthgate.data.subjects import (
    SubjectSource,
    apply_subjects,
    compile_subject_pattern,
    per_image_subjects,
    read_subject_csv,
    subject_map,
    subject_source,
)
from synthgate.errors import InputError, UsageError

IDS = ("pat1_s010", "pat1_s011", "pat2_s040", "pat3_s007", "pat3_s008")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in IDS:
        np.save(d / f"{i}.npy", rng.random((2, 8, 8), dtype=np.float32))
    return d


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_folder_counts_each_image_as_its_own_subject(folder: Path, tmp_path: Path) -> None:
    s = load_set(folder)
    assert s.subjects == IDS and per_image_subjects(s)
    assert subject_source(read_store(write_store(s, tmp_path / "store"))) is SubjectSource.PER_IMAGE


def test_grouping_via_csv(folder: Path, tmp_path: Path) -> None:
    rows = "".join(f"{i},{i.split('_')[0].upper()}\n" for i in reversed(IDS))
    groups = read_subject_csv(_csv(tmp_path / "s.csv", "id,subject\n" + rows))
    s = apply_subjects(load_set(folder), groups, "--train")
    assert s.subjects == ("PAT1", "PAT1", "PAT2", "PAT3", "PAT3")
    assert s.subject_ids == ("PAT1", "PAT2", "PAT3") and subject_source(s) is SubjectSource.CSV
    assert not per_image_subjects(s)


def test_grouping_via_pattern(folder: Path) -> None:
    s = apply_subjects(load_set(folder), subject_map(None, r"^(?P<subject>pat\d+)_"), "--train")
    assert s.subjects == ("pat1", "pat1", "pat2", "pat3", "pat3") and subject_source(s) is SubjectSource.PATTERN


def test_a_set_with_its_own_subjects_keeps_them(folder: Path) -> None:
    s = load_set(folder)
    own = type(s)(images=s.images, ids=s.ids, subjects=("a",) * 5, channels=s.channels)
    assert apply_subjects(own, subject_map(None, r"(?P<subject>pat\d)"), "--train") is own
    assert apply_subjects(s, None, "--train") is s


def test_csv_errors_name_the_problem(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no column 'subject'.*id, patient"):
        read_subject_csv(_csv(tmp_path / "a.csv", "id,patient\npat1_s010,p1\n"))
    with pytest.raises(InputError, match="cannot read"):
        read_subject_csv(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="line 3: id 'x' is given two subjects"):
        read_subject_csv(_csv(tmp_path / "b.csv", "id,subject\nx,p1\nx,p2\n"))
    with pytest.raises(InputError, match="line 2: an empty id or subject"):
        read_subject_csv(_csv(tmp_path / "c.csv", "id,subject\nx,\n"))
    partial = read_subject_csv(_csv(tmp_path / "d.csv", "id,subject\npat1_s010,p1\npat1_s011,p1\n"))
    with pytest.raises(InputError, match=r"no row for id 'pat2_s040' of --holdout"):
        apply_subjects(load_set(folder), partial, "--holdout")


def test_pattern_errors(folder: Path) -> None:
    with pytest.raises(UsageError, match="no named group 'subject'"):
        compile_subject_pattern(r"^(pat\d+)_")
    with pytest.raises(UsageError, match="not a regular expression"):
        compile_subject_pattern(r"(?P<subject>[")
    with pytest.raises(InputError, match=r"does not match id 'pat2_s040' of --train"):
        apply_subjects(load_set(folder), compile_subject_pattern(r"^(?P<subject>pat[13])_"), "--train")
    with pytest.raises(UsageError, match="not both"):
        subject_map(Path("x.csv"), "(?P<subject>.)")
