"""Row 12: the privacy guard covers every real id the build can see, not only the best-matched subjects."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthgate.data.store import read_store
from tests.faults.conftest import cli, leftovers
from tests.release.conftest import write_utility


def _build(world: dict[str, Path], out: Path, name: str, *extra: str | Path) -> tuple[int, str]:
    pol = out.parent / "policy.toml"
    pol.write_text(world["policy"].read_text() + f'[access]\ndataset_name = "synthetic MRI ({name})"\n')
    r = cli("release", "build", "--synthetic", world["synthetic"], "--audit", world["audit"], "--policy", pol,
            "--out", out, *extra)
    return r.exit_code, r.output


@pytest.mark.parametrize("which", ["holdout id", "holdout subject", "train subject"])
def test_row12_real_id_in_dataset_name_is_refused(which: str, world: dict[str, Path], tmp_path: Path) -> None:
    train, hold = read_store(world["train"]), read_store(world["holdout"])
    name = {"holdout id": hold.ids[3], "holdout subject": hold.subjects[5], "train subject": train.subjects[7]}[which]
    out = tmp_path / "bundle"
    code, output = _build(world, out, name)
    assert code == 4 and "README.md" in output and "real id" in output, output
    assert leftovers(out) == []


def test_row12_test_subject_of_the_utility_audit_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    util = write_utility(tmp_path / "utility", synthetic=read_store(world["synthetic"]))
    (util / "private_subject_map.csv").write_text("opaque_id,subject\nS01,BraTS2021_77777\n")
    out = tmp_path / "bundle"
    code, output = _build(world, out, "BraTS2021_77777", "--utility", util)
    assert code == 4 and "README.md" in output, output
    assert leftovers(out) == []
