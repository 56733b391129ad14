"""The demo's decision path at toy scale: the real flow, the gate's decision, the exit code and the bundle."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

import synthgate.demo as demo_mod
from synthgate.cli import app
from synthgate.demo import Decision, DemoConfig, Scenario, demo_policy, run_demo
from synthgate.errors import UsageError

TOY = {
    "subjects": 5,
    "volume_shape": (32, 32, 24),
    "size": 32,
    "generator_steps": 4,
    "monitor_every": 2,
    "monitor_samples": 4,
    "n_synthetic": 6,
    "sample_steps": 2,
    "utility_epochs": 1,
}


def test_an_interrupted_demo_folder_can_be_overwritten(tmp_path: Path) -> None:
    demo_mod._out_dir(tmp_path / "d", overwrite=False)
    (tmp_path / "d" / "cohort").mkdir()  # a run stopped here
    demo_mod._out_dir(tmp_path / "d", overwrite=True)
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["demo.json"]


def test_exit_codes_follow_the_decision() -> None:
    assert [d.exit_code for d in Decision] == [0, 3, 4]
    with pytest.raises(UsageError, match="subjects"):
        DemoConfig(subjects=3)
    assert DemoConfig(scenario="memorizing").generator_steps != DemoConfig().generator_steps


@pytest.mark.slow
def test_default_scenario_at_toy_scale_releases_a_verified_bag_when_the_checks_pass(tmp_path: Path) -> None:
    # toy scale cannot reach the default utility limits; with them waived, the gate's other checks and verify decide
    policy = replace(demo_policy(), min_utility_ratio=dict.fromkeys(("WT", "TC", "ET"), 0.0), min_reference_dice=0.0,
                     max_fraction_flagged_before_removal=0.5)
    res = run_demo(tmp_path / "d", DemoConfig(**TOY), policy=policy)  # type: ignore[arg-type]
    assert res.decision is Decision.RELEASE and res.exit_code == 0 and res.reasons == ()
    assert (tmp_path / "d" / "bundle" / "bagit.txt").is_file()
    assert res.paths["public_report"].is_file() and res.paths["card"].is_file()
    assert all(c["passed"] for c in res.facts["verify"])
    assert {c["name"] for c in res.facts["verify"]} >= {"bagit", "hf_load", "reaudit"}
    gen = res.facts["generator"]
    assert gen["steps"] == 4 and gen["monitor"]["config"]["stop_on"] == 0.5
    assert [p["step"] for p in gen["monitor"]["points"]] == [2, 4]
    provenance = json.loads((tmp_path / "d" / "bundle" / "data" / "provenance.json").read_text())
    assert provenance["generator"]["monitor"]["stop_on"] == 0.5  # the kept checkpoint and why
    saved = json.loads((tmp_path / "d" / "demo.json").read_text())
    assert saved["decision"] == "release" and saved["exit_code"] == 0 and saved["paths"]["card"].endswith("README.md")


@pytest.mark.slow
def test_memorizing_scenario_at_toy_scale_is_refused_without_a_bag(tmp_path: Path) -> None:
    res = run_demo(tmp_path / "d", DemoConfig(scenario=Scenario.MEMORIZING, **TOY))  # type: ignore[arg-type]
    assert res.decision is Decision.REFUSE and res.exit_code == 3
    assert not (tmp_path / "d" / "bundle").exists() and "bundle" not in res.paths
    failed = [c for c in res.facts["checks"] if not c["passed"]]
    # the decision is the gate's: every failing check is a reason, and there is one
    assert failed and len(res.reasons) == len(failed)
    assert res.facts["generator"]["train_images"] == 4  # the memorize preset
    assert res.facts["audit"]["train"] == 4  # audited against the images it trained on
    assert res.facts["generator"]["monitor"]["kept"] is None  # watched, not stopped
    saved = json.loads((tmp_path / "d" / "demo.json").read_text())
    assert saved["decision"] == "refuse" and saved["exit_code"] == 3


@pytest.mark.slow
def test_demo_cli_exits_3_on_a_refusal_and_2_on_an_existing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toy = {k: v for k, v in TOY.items() if k != "generator_steps"}  # the command passes its own (None: default)
    monkeypatch.setattr(demo_mod, "DemoConfig", partial(DemoConfig, **toy))
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--device", "cpu", "--scenario", "memorizing",
                                 "--generator-steps", "2", "--json"])
    assert r.exit_code == 3, r.output
    saved = json.loads(r.stdout)
    assert saved["decision"] == "refuse" and saved["facts"]["generator"]["steps"] == 2
    assert not (out / "bundle").exists()
    assert CliRunner().invoke(app, ["demo", "--out", str(out), "--device", "cpu"]).exit_code == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "other"), "--overwrite", "--device", "cpu"])
    assert r.exit_code == 2 and (tmp_path / "other" / "thesis.tex").is_file()
