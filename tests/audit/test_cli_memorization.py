from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from synthgate.audit.planted import CopyKind, plant_copies
from synthgate.cli import app
from synthgate.cli.options import parse_size
from synthgate.data.store import read_store, write_store
from synthgate.errors import UsageError

from .conftest import blob_images, make_set

COLUMNS = ["synthetic_id", "train_id", "train_subject", "score", "flagged", "transform", "pixel_score",
           "pixel_train_id", "angle_deg", "scale", "shift_y", "shift_x", "flagged_by", "structure_score",
           "structure_train_id", "partial_score", "partial_train_id"]


def summary_scores(out: Path) -> set[str]:
    return set(json.loads((out / "summary.json").read_text())["scores"])


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Path]:
    train = make_set(blob_images(16, seed=1), "tr")
    copies, _ = plant_copies(train, 2, kinds=[CopyKind.IDENTITY, CopyKind.HFLIP], seed=0)
    unseen = make_set(blob_images(3, seed=3), "un")
    syn_images = np.concatenate([unseen.images, copies.images])
    syn = make_set(syn_images, "sy")
    out = {
        "train": write_store(train, tmp_path / "train"),
        "holdout": write_store(make_set(blob_images(12, seed=2), "ho"), tmp_path / "holdout"),
        "synthetic": write_store(syn, tmp_path / "synthetic"),
        "other": write_store(make_set(blob_images(3, channels=1, seed=4), "ot"), tmp_path / "other"),
        "empty": tmp_path / "empty",
    }
    out["empty"].mkdir()
    return out


def run(*args: str) -> object:
    return CliRunner().invoke(app, ["audit", "memorization", *args])


def test_writes_exactly_the_specified_files_and_columns(stores: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "audit"
    res = run("--train", str(stores["train"]), "--synthetic", str(stores["synthetic"]), "--holdout",
              str(stores["holdout"]), "--out", str(out), "--transforms", "hflip", "--json")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert sorted(p.name for p in out.iterdir()) == ["matches.csv", "report.html", "scores.png", "summary.json",
                                                      "top_pairs.png"]
    with (out / "matches.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == COLUMNS and len(rows) == 1 + 7
    flagged = [r[4] for r in rows[1:]]
    assert flagged == ["false"] * 3 + ["true"] * 4
    assert [r[5] for r in rows[4:]] == ["identity", "identity", "hflip", "hflip"]
    assert all(r[12] == "pearson+structure+partial" for r in rows[4:])  # exact copies: every score votes
    assert summary_scores(out) == {"pearson", "structure", "partial"}
    summary = json.loads((out / "summary.json").read_text())
    for key in ("synthgate_version", "created", "counts", "fraction_flagged", "threshold", "calibration",
                "subjects_leaked", "distributions", "test", "settings", "versions"):
        assert key in summary
    assert summary["counts"]["flagged"] == 4 and summary["calibration"]["method"] == "holdout+train-subject-disjoint"
    assert "fewer than 10" in summary["calibration"]["note"]  # 3 holdout subjects: the training subjects join
    assert set(summary["distributions"]) == {"synthetic_to_train", "holdout_to_train"}
    printed = json.loads(res.stdout)  # type: ignore[attr-defined]
    assert printed["threshold"] == summary["threshold"]
    page = (out / "report.html").read_text()
    assert "PRIVATE" in page and "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")


def test_holdout_only_calibrates_on_the_holdout_alone(stores: dict[str, Path], tmp_path: Path) -> None:
    args = ["--train", str(stores["train"]), "--synthetic", str(stores["synthetic"]), "--holdout",
            str(stores["holdout"]), "--transforms", "hflip", "--scores", "pearson", "--json"]
    pooled = run(*args, "--out", str(tmp_path / "pooled"))
    alone = run(*args, "--holdout-only", "--out", str(tmp_path / "alone"))
    assert pooled.exit_code == 0 and alone.exit_code == 0, alone.output  # type: ignore[attr-defined]
    cal = [json.loads((tmp_path / d / "summary.json").read_text())["calibration"] for d in ("pooled", "alone")]
    assert cal[0]["method"] == "holdout+train-subject-disjoint" and cal[1]["method"] == "holdout-quantile"
    holdout_images = len(read_store(stores["holdout"]))
    assert cal[1]["n_null"] == holdout_images < cal[0]["n_null"]


def test_failure_exit_codes(stores: dict[str, Path], tmp_path: Path) -> None:
    base = ["--train", str(stores["train"]), "--out", str(tmp_path / "o")]
    # channel mismatch -> 5
    res = run(*base, "--synthetic", str(stores["other"]))
    assert res.exit_code == 5 and "channels" in res.output  # type: ignore[attr-defined]
    # empty / missing input -> 5
    assert run(*base, "--synthetic", str(stores["empty"])).exit_code == 5  # type: ignore[attr-defined]
    assert run(*base, "--synthetic", str(tmp_path / "nope")).exit_code == 5  # type: ignore[attr-defined]
    # bad options -> 2
    assert run(*base, "--synthetic", str(stores["synthetic"]), "--quantile", "1.5").exit_code == 2  # type: ignore[attr-defined]
    assert run(*base, "--synthetic", str(stores["synthetic"]), "--transforms", "warp").exit_code == 2  # type: ignore[attr-defined]
    assert run(*base, "--synthetic", str(stores["synthetic"]), "--max-memory", "lots").exit_code == 2  # type: ignore[attr-defined]
    # existing --out without --overwrite -> 2
    (tmp_path / "exists").mkdir()
    res = run("--train", str(stores["train"]), "--synthetic", str(stores["synthetic"]), "--out",
              str(tmp_path / "exists"))
    assert res.exit_code == 2  # type: ignore[attr-defined]
    assert not (tmp_path / "o").exists()


def test_parse_size() -> None:
    assert parse_size("512M") == 512 << 20
    assert parse_size("2G") == 2 << 30
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size("1000") == 1000
    with pytest.raises(UsageError):
        parse_size("2 gigs")


def test_scores_option(stores: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "a"
    res = run("--train", str(stores["train"]), "--synthetic", str(stores["synthetic"]), "--holdout",
              str(stores["holdout"]), "--out", str(out), "--transforms", "none", "--scores", "pearson")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert summary_scores(out) == {"pearson"}
    bad = run("--train", str(stores["train"]), "--synthetic", str(stores["synthetic"]), "--out",
              str(tmp_path / "b"), "--scores", "pearson,texture")
    assert bad.exit_code == 2 and "texture" in bad.output and "structure" in bad.output  # type: ignore[attr-defined]
    assert not (tmp_path / "b").exists()
