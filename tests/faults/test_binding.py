"""Rows 1 and 2: the gate binds an audit to images by content, and a holdout overlapping training is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from synthgate.data.store import read_store, write_store
from tests.faults.conftest import cli, images, leftovers, make
from tests.release.conftest import write_utility


def test_row1_another_sample_with_the_same_ids_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    r = cli("release", "build", "--synthetic", world["leaky"], "--audit", world["audit"], "--out", out)
    assert r.exit_code == 5, r.output
    assert "--synthetic is not the set audited" in r.output and "image 4 ('syn-000004')" in r.output
    assert "summary.json" in r.output
    assert leftovers(out) == []


def test_row1_training_and_holdout_sets_are_checked(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    args = ("release", "build", "--synthetic", world["synthetic"], "--audit", world["audit"], "--out", out)
    r = cli(*args, "--train", world["holdout"])
    assert r.exit_code == 5 and "--train is not the set audited" in r.output, r.output
    r = cli(*args, "--holdout", world["train"])
    assert r.exit_code == 5 and "--holdout is not the set audited" in r.output, r.output
    assert leftovers(out) == []
    r = cli(*args, "--train", world["train"], "--holdout", world["holdout"], "--policy", world["policy"])
    assert r.exit_code == 0, r.output


def test_row1_utility_audit_is_bound_too(world: dict[str, Path], tmp_path: Path) -> None:
    util = write_utility(tmp_path / "utility", synthetic=read_store(world["leaky"]))
    out = tmp_path / "bundle"
    r = cli("release", "build", "--synthetic", world["synthetic"], "--audit", world["audit"],
            "--utility", util, "--out", out)
    assert r.exit_code == 5 and "utility.json" in r.output and "image 4" in r.output, r.output
    assert leftovers(out) == []


def test_row1_audit_without_binding_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    old = tmp_path / "old-audit"
    old.mkdir()
    for f in ("matches.csv", "summary.json"):
        (old / f).write_bytes((world["audit"] / f).read_bytes())
    summary = json.loads((old / "summary.json").read_text())
    del summary["binding"]
    (old / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "bundle"
    r = cli("release", "build", "--synthetic", world["synthetic"], "--audit", old, "--out", out)
    assert r.exit_code == 5 and "no content binding" in r.output, r.output
    assert leftovers(out) == []


def test_row2_holdout_equal_to_train_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "audit"
    r = cli("audit", "memorization", "--train", world["train"], "--synthetic", world["leaky"],
            "--holdout", world["train"], "--out", out, "--device", "cpu")
    assert r.exit_code == 5 and "--holdout overlaps --train" in r.output and "image id" in r.output, r.output
    assert leftovers(out) == []


def test_row2_holdout_with_copied_content_under_new_names_is_refused(world: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    train = read_store(world["train"])
    x = images(6, 9)
    x[2] = train.images[5]
    hold = write_store(make(x, "other"), tmp_path / "holdout")
    out = tmp_path / "audit"
    r = cli("audit", "memorization", "--train", world["train"], "--synthetic", world["leaky"],
            "--holdout", hold, "--out", out, "--device", "cpu")
    assert r.exit_code == 5 and "same content as a training image" in r.output, r.output
    assert "'other-000002'" in r.output
    assert leftovers(out) == []


def test_row2_holdout_sharing_a_subject_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    train = read_store(world["train"])
    s = make(images(4, 11), "other")
    s = type(s)(**{**s.__dict__, "subjects": (train.subjects[0],) * 4})
    hold = write_store(s, tmp_path / "holdout")
    out = tmp_path / "audit"
    r = cli("audit", "memorization", "--train", world["train"], "--synthetic", world["leaky"],
            "--holdout", hold, "--out", out, "--device", "cpu")
    assert r.exit_code == 5 and "subject(s) in both" in r.output and train.subjects[0] in r.output, r.output
    assert leftovers(out) == []


def test_row2_null_of_copies_is_refused_not_silently_used(world: dict[str, Path], tmp_path: Path) -> None:
    """A holdout of near-copies (tiny noise, so no digest matches) makes the null quantile ~1."""
    train = read_store(world["train"])
    x = np.array(train.images[:6]) + np.float32(1e-7)
    hold = write_store(make(x, "other"), tmp_path / "holdout")
    out = tmp_path / "audit"
    r = cli("audit", "memorization", "--train", world["train"], "--synthetic", world["leaky"],
            "--holdout", hold, "--out", out, "--device", "cpu")
    assert r.exit_code == 5 and "quantile" in r.output and "--holdout" in r.output, r.output
    assert leftovers(out) == []
