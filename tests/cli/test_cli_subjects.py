"""``--subjects`` / ``--subject-pattern`` on ``audit memorization``: grouping, the per-image note, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from synthgate.cli import app
from tests.audit.conftest import blob_images


def _folder(path: Path, images: np.ndarray, ids: list[str]) -> Path:
    path.mkdir()
    for img, i in zip(images, ids, strict=True):
        np.save(path / f"{i}.npy", img)
    return path


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """16 training slices of 4 patients, 8 holdout slices of 2 others, 3 unseen + 2 exact copies of patient 0."""
    train = blob_images(16, label=False, seed=1)
    tr_ids = [f"tr{p}_{k:02d}" for p in range(4) for k in range(4)]
    syn = np.concatenate([blob_images(3, label=False, seed=3), train[[0, 1]]])
    return {
        "train": _folder(tmp_path / "train", train, tr_ids),
        "holdout": _folder(tmp_path / "holdout", blob_images(8, label=False, seed=2),
                           [f"ho{p}_{k:02d}" for p in range(2) for k in range(4)]),
        "synthetic": _folder(tmp_path / "synthetic", syn, [f"syn{i}" for i in range(5)]),
    }


def _audit(folders: dict[str, Path], out: Path, *extra: str) -> object:
    args = ["audit", "memorization", "--train", str(folders["train"]), "--holdout", str(folders["holdout"]),
            "--synthetic", str(folders["synthetic"]), "--out", str(out), "--transforms", "none", "--threshold", "0.999", *extra]
    return CliRunner().invoke(app, args)


def _leaked(out: Path) -> dict[str, object]:
    return json.loads((out / "summary.json").read_text())["subjects_leaked"]  # type: ignore[no-any-return]


def test_folders_without_subjects_say_so(folders: dict[str, Path], tmp_path: Path) -> None:
    res = _audit(folders, tmp_path / "a")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    leaked = _leaked(tmp_path / "a")
    assert leaked["total"] == 16 and leaked["count"] == 2 and leaked["per_image"] is True
    assert "each image counts as its own subject" in str(leaked["note"])
    assert "each image counts as its own subject" in (tmp_path / "a" / "report.html").read_text()
    args = ["audit", "memorization", "--train", str(folders["train"]), "--synthetic", str(folders["synthetic"]),
            "--out", str(tmp_path / "b"), "--transforms", "none"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "pairs slices of one patient" in str(_leaked(tmp_path / "b")["note"])


def test_subjects_via_csv_and_pattern_group_the_images(folders: dict[str, Path], tmp_path: Path) -> None:
    ids = [p.stem for d in ("train", "holdout") for p in sorted(folders[d].iterdir())]
    csv = tmp_path / "subjects.csv"
    csv.write_text("id,subject\n" + "".join(f"{i},{i.split('_')[0]}\n" for i in ids))
    for out, extra in ((tmp_path / "csv", ("--subjects", str(csv))),
                       (tmp_path / "rx", ("--subject-pattern", r"^(?P<subject>[a-z]+\d)_"))):
        res = _audit(folders, out, *extra)
        assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
        leaked = _leaked(out)
        assert (leaked["count"], leaked["total"], leaked["per_image"]) == (1, 4, False)
        assert leaked["subjects_from"] == ("csv" if "--subjects" in extra else "pattern")


def test_subject_errors_exit_codes(folders: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("image,subject\ntr0_00,a\n")
    res = _audit(folders, tmp_path / "o1", "--subjects", str(bad))
    assert res.exit_code == 5 and "no column 'id'" in res.output  # type: ignore[attr-defined]
    short = tmp_path / "short.csv"
    short.write_text("id,subject\ntr0_00,a\n")
    res = _audit(folders, tmp_path / "o2", "--subjects", str(short))
    assert res.exit_code == 5 and "tr0_01" in res.output  # type: ignore[attr-defined]
    res = _audit(folders, tmp_path / "o3", "--subject-pattern", r"^(tr\d)_")
    assert res.exit_code == 2 and "named group 'subject'" in res.output  # type: ignore[attr-defined]
    res = _audit(folders, tmp_path / "o4", "--subject-pattern", r"^(?P<subject>tr\d)_")
    assert res.exit_code == 5 and "ho0_00" in res.output  # type: ignore[attr-defined]
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))



def test_utility_and_release_take_the_options_and_fail_before_any_work(folders: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    utility = ["audit", "utility", "--real-train", str(folders["train"]), "--real-test", str(folders["holdout"]),
               "--out", str(tmp_path / "u")]
    res = CliRunner().invoke(app, [*utility, "--subject-pattern", r"^(?P<subject>tr\d)_"])
    assert res.exit_code == 5 and "ho0_00" in res.output and "--real-test" in res.output  # type: ignore[attr-defined]
    res = CliRunner().invoke(app, [*utility, "--subject-pattern", "(", "--subjects", "x.csv"])
    assert res.exit_code == 2 and "not both" in res.output  # type: ignore[attr-defined]
    build = ["release", "build", "--synthetic", str(folders["synthetic"]), "--audit", str(tmp_path / "none"),
             "--train", str(folders["train"]), "--out", str(tmp_path / "b")]
    res = CliRunner().invoke(app, [*build, "--subject-pattern", "tr"])
    assert res.exit_code == 2 and "named group 'subject'" in res.output  # type: ignore[attr-defined]
    assert not (tmp_path / "u").exists() and not (tmp_path / "b").exists()
