"""Row 3: real images are not released as synthetic unless --allow-real, and then the card says so."""

from __future__ import annotations

import json
from pathlib import Path

from synthgate.data.store import write_store
from tests.faults.conftest import cli, images, leftovers, make


def test_row3_real_store_is_refused_unless_allow_real(world: dict[str, Path], tmp_path: Path) -> None:
    patients = write_store(make(images(6, 21), "BraTS2021_03", source="real"), tmp_path / "patients")
    audit = tmp_path / "audit"
    r = cli("audit", "memorization", "--train", world["train"], "--synthetic", patients,
            "--holdout", world["holdout"], "--out", audit, "--device", "cpu")
    assert r.exit_code == 0, r.output
    out = tmp_path / "bundle"
    args = ("release", "build", "--synthetic", patients, "--audit", audit, "--policy", world["policy"], "--out", out)
    r = cli(*args)
    assert r.exit_code == 5 and "--synthetic" in r.output and "--allow-real" in r.output, r.output
    assert "are real" in r.output
    assert leftovers(out) == []
    r = cli(*args, "--allow-real")
    assert r.exit_code == 0, r.output
    card = (out / "data" / "README.md").read_text()
    assert "REAL patient images, not synthetic" in card
    report = json.loads((out / "data" / "release_report.json").read_text())
    assert report["counts"]["real_released"] > 0
    assert any("REAL patient images" in w for w in report["warnings"])
    assert "REAL patient images" in (out / "data" / "release_report.html").read_text()
