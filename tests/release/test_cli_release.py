"""One CliRunner test per release command, with its failure exit codes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from synthgate.cli import app
from synthgate.data.store import write_store

from .conftest import make_synthetic, make_train, write_audit, write_utility
from .test_publish import FakeApi

runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    train = make_train()
    syn = make_synthetic(train)
    return {
        "root": root,
        "train": write_store(train, root / "train"),
        "synthetic": write_store(syn, root / "synthetic"),
        "audit": write_audit(root / "audit", syn, train),
        "utility": write_utility(root / "utility"),
        "low_utility": write_utility(root / "low", {"WT": 0.5, "TC": 0.9, "ET": 0.9}),
    }


def test_policy_init_and_check(tmp_path: Path) -> None:
    p = tmp_path / "policy.toml"
    r = runner.invoke(app, ["release", "policy", "--init", str(p)])
    assert r.exit_code == 0, r.output
    assert tomllib.loads(p.read_text())["memorization"]["remove_flagged"] is True
    assert runner.invoke(app, ["release", "policy", "--init", str(p)]).exit_code == 2
    r = runner.invoke(app, ["release", "policy", "--check", str(p)])
    assert r.exit_code == 0 and json.loads(r.stdout)["utility"]["min_ratio"]["ET"] == 0.8
    p.write_text("[memorization]\nbogus = 1\n")
    assert runner.invoke(app, ["release", "policy", "--check", str(p)]).exit_code == 2
    assert runner.invoke(app, ["release", "policy"]).exit_code == 2
    assert runner.invoke(app, ["release", "policy", "--check", str(tmp_path / "none.toml")]).exit_code == 5


def _build(inputs: dict[str, Path], out: Path, *extra: str, utility: str = "utility") -> Any:
    return runner.invoke(
        app,
        [
            "release",
            "build",
            "--synthetic",
            str(inputs["synthetic"]),
            "--audit",
            str(inputs["audit"]),
            "--utility",
            str(inputs[utility]),
            "--out",
            str(out),
            *extra,
        ],
    )


def test_build_verify_publish(inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "bundle"
    r = _build(inputs, out, "--train", str(inputs["train"]), "--json")
    assert r.exit_code == 0, r.output
    decision = json.loads(r.stdout)  # only JSON on stdout
    assert decision["decision"] == "release" and decision["counts"]["released"] == 23
    assert (out / "bagit.txt").is_file()
    assert _build(inputs, out).exit_code == 2  # exists, no --overwrite
    assert _build(inputs, out, "--overwrite").exit_code == 0

    r = runner.invoke(app, ["release", "verify", str(out), "--train", str(inputs["train"])])
    assert r.exit_code == 0, r.output
    assert "reaudit" in r.stdout

    import huggingface_hub

    fake = FakeApi()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: fake)
    r = runner.invoke(app, ["release", "publish", str(out), "--repo-id", "org/demo", "--private"])
    assert r.exit_code == 0, r.output
    assert [c[0] for c in fake.calls] == ["create_repo", "upload_folder", "update_repo_settings"]

    report = out / "data" / "release_report.json"
    report.write_text(report.read_text().replace('"release"', '"refuse"', 1))
    r = runner.invoke(app, ["release", "verify", str(out)])
    assert r.exit_code == 4 and "bagit" in r.output
    fake.calls.clear()
    r = runner.invoke(app, ["release", "publish", str(out), "--repo-id", "org/demo"])
    assert r.exit_code == 4 and fake.calls == []
    assert runner.invoke(app, ["release", "verify", str(tmp_path / "nothing")]).exit_code == 4


def test_build_refusal_exits_3_and_lists_checks(inputs: dict[str, Path], tmp_path: Path) -> None:
    pol = tmp_path / "p.toml"
    pol.write_text("[memorization]\nmax_fraction_flagged_before_removal = 0.0\n")
    r = _build(inputs, tmp_path / "bundle", "--policy", str(pol), utility="low_utility")
    assert r.exit_code == 3
    assert "fraction_flagged_before_removal: 0.0417 (1/24) (policy: <= 0.0)" in r.output
    assert "utility_ratio_WT: 0.500 (policy: >= 0.8)" in r.output
    assert not (tmp_path / "bundle").exists()


def test_build_input_errors(inputs: dict[str, Path], tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            "release",
            "build",
            "--synthetic",
            str(inputs["train"]),
            "--audit",
            str(inputs["audit"]),
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert r.exit_code == 5 and "--synthetic is not the set audited" in r.output
    r = runner.invoke(
        app,
        [
            "release",
            "build",
            "--synthetic",
            str(inputs["synthetic"]),
            "--audit",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert r.exit_code == 5
