"""``synthgate audit utility`` through the CLI: outputs and exit codes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthgate.cli import app
from synthgate.data.store import write_store
from tests.segment.helpers import make_tumour_set

runner = CliRunner()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    syn = make_tumour_set(2, 4, 32, seed=1, prefix="gen")
    paths = {
        "synthetic": write_store(syn, root / "syn"),
        "train": write_store(make_tumour_set(2, 4, 32, seed=2, prefix="tr"), root / "train"),
        "test": write_store(make_tumour_set(2, 4, 32, seed=3, prefix="te"), root / "test"),
        "unlabelled": write_store(replace(syn, label_channel=None, label_map=None), root / "unlabelled"),
    }
    return paths


def _args(stores: dict[str, Path], out: Path, *extra: str, synthetic: str = "synthetic") -> list[str]:
    args = ["audit", "utility", "--real-train", str(stores["train"]), "--real-test", str(stores["test"])]
    args += ["--out", str(out), "--epochs", "1", "--batch-size", "4", "--device", "cpu", *extra]
    if synthetic:
        args += ["--synthetic", str(stores[synthetic])]
    return args


def test_cli_writes_outputs_and_table(stores: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "u"
    result = runner.invoke(app, _args(stores, out, "--seeds", "2", "--threads", "1"))
    assert result.exit_code == 0, result.output
    assert "synthetic / real" in result.stdout and "mixed" in result.stdout
    doc = json.loads((out / "utility.json").read_text())
    assert doc["seeds"] == [0, 1] and doc["epochs"] == 1 and set(doc["modes"]) == {"real", "synthetic", "mixed"}
    assert (out / "utility.png").is_file() and (out / "utility_fragment.html").is_file()
    again = runner.invoke(app, _args(stores, out))
    assert again.exit_code == 2 and "already exists" in again.output
    json_run = runner.invoke(app, _args(stores, out, "--overwrite", "--json", "--mode", "real", synthetic=""))
    assert json_run.exit_code == 0, json_run.output
    assert set(json.loads(json_run.stdout)["modes"]) == {"real"}


@pytest.mark.parametrize(
    ("extra", "synthetic", "code", "message"),
    [
        (("--mode", "synthetic"), "", 2, "needs --synthetic"),
        (("--net", "swinunetr"), "synthetic", 2, "at least 64x64"),
        (("--mode", "bogus"), "synthetic", 2, "bogus"),
        ((), "unlabelled", 5, "no label channel"),
    ],
)
def test_cli_failures(
    stores: dict[str, Path], tmp_path: Path, extra: tuple[str, ...], synthetic: str, code: int, message: str
) -> None:
    result = runner.invoke(app, _args(stores, tmp_path / "u", *extra, synthetic=synthetic))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not (tmp_path / "u").exists()


def test_cli_missing_input_is_invalid_input(stores: dict[str, Path], tmp_path: Path) -> None:
    args = _args(stores, tmp_path / "u")
    args[args.index("--real-test") + 1] = str(tmp_path / "nowhere")
    result = runner.invoke(app, args)
    assert result.exit_code == 5, result.output
