"""The demo: the real flow at toy size (the decision comes from the checks), missing stages, the CLI."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

import synthgate.release.demo as demo_mod
from synthgate.cli import app
from synthgate.errors import UsageError
from synthgate.release.demo import DemoConfig, run_demo

TOY = {
    "subjects": 5,
    "volume_shape": (32, 32, 24),
    "size": 32,
    "generator_seconds": 2.0,
    "n_synthetic": 6,
    "sample_steps": 2,
    "utility_epochs": 1,
}


def test_missing_stages_are_reported_not_faked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_mod, "available_stages", lambda: ("phantom", "ingest", "release", "verify"))
    res = run_demo(tmp_path / "d", DemoConfig(**TOY))  # type: ignore[arg-type]
    assert res.decision == "incomplete" and res.verified is None
    assert res.missing == ("generator", "sample", "audit", "utility")
    assert set(res.timings) == {"phantom", "ingest"}
    saved = json.loads((tmp_path / "d" / "demo.json").read_text())
    assert saved["decision"] == "incomplete" and saved["missing_stages"] == list(res.missing)
    assert not (tmp_path / "d" / "bundle").exists()
    with pytest.raises(UsageError, match="already exists"):
        run_demo(tmp_path / "d", DemoConfig(**TOY))  # type: ignore[arg-type]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    with pytest.raises(UsageError, match="not a synthgate demo folder"):
        run_demo(tmp_path / "other", DemoConfig(**TOY), overwrite=True)  # type: ignore[arg-type]
    assert (tmp_path / "other" / "thesis.tex").is_file()


@pytest.mark.slow
def test_demo_cli_runs_the_real_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        demo_mod, "DemoConfig", partial(DemoConfig, **{k: v for k, v in TOY.items() if k != "generator_seconds"})
    )
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--device", "cpu", "--generator-seconds", "2", "--json"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "demo.json").read_text())
    assert saved["decision"] in ("release", "refuse") and saved["missing_stages"] == []
    checks = saved["facts"]["checks"]
    failed = [c for c in checks if not c["passed"]]
    # the decision is the gate's: refuse exactly when a check failed, and every failure is a reason
    assert (saved["decision"] == "refuse") == bool(failed)
    assert len(saved["reasons"]) == len(failed)
    assert (out / "audit" / "summary.json").is_file() and (out / "utility" / "utility.json").is_file()
    if saved["decision"] == "release":
        assert saved["verified"] is True and (out / "bundle" / "bagit.txt").is_file()
    else:
        assert not (out / "bundle").exists()
    assert CliRunner().invoke(app, ["demo", "--out", str(out), "--device", "cpu"]).exit_code == 2
