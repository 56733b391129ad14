"""Row 7 (and the ingest rows of 16): what ingest writes when subjects are skipped or look alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from synthgate.data.config import IngestConfig
from synthgate.data.ingest import split_subjects
from tests.faults.conftest import cli, leftovers


def _cohort_with_broken(phantom_cohort: Path, tmp_path: Path, split: str) -> tuple[Path, list[str]]:
    cohort = tmp_path / "cohort"
    shutil.copytree(phantom_cohort, cohort)
    subjects = sorted(p.name for p in cohort.iterdir() if p.is_dir())
    broken = split_subjects(subjects, IngestConfig().split, 0)[split]
    for s in broken:
        for f in (cohort / s).iterdir():
            f.write_bytes(b"not a nifti file")
    return cohort, broken


def test_row7_skip_writes_no_empty_split_and_reports_skips(phantom_cohort: Path, tmp_path: Path) -> None:
    cohort, broken = _cohort_with_broken(phantom_cohort, tmp_path, "holdout")
    out = tmp_path / "stores"
    r = cli("data", "ingest", cohort, "--out", out, "--size", "32", "--on-error", "skip")
    assert r.exit_code == 0, r.output
    assert not (out / "holdout").exists()
    assert (out / "train").is_dir() and (out / "test").is_dir()
    record = json.loads((out / "ingest.json").read_text())
    assert "holdout" not in record["stores"] and "holdout" not in record["counts"]
    assert record["splits"]["holdout"] == []
    assert {Path(s["path"]).name for s in record["skipped"]} >= set(broken)
    assert leftovers(out) == [out.name]


def test_row16_same_patient_under_two_folder_names_is_refused(phantom_cohort: Path, tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    shutil.copytree(phantom_cohort, cohort)
    first = sorted(p.name for p in cohort.iterdir())[0]
    for twin, make_twin in ((first.upper(), lambda d: shutil.copytree(cohort / first, d)),
                            ("Zlink_0001", lambda d: d.symlink_to(cohort / first, target_is_directory=True))):
        make_twin(cohort / twin)
        out = tmp_path / "stores"
        r = cli("data", "ingest", cohort, "--out", out, "--size", "32")
        assert r.exit_code == 5, r.output
        assert first in r.output and twin in r.output and "two splits" in r.output
        assert leftovers(out) == []
        p = cohort / twin
        p.unlink() if p.is_symlink() else shutil.rmtree(p)
