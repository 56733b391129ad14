from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from synthgate import __version__
from synthgate.cli import app

runner = CliRunner()


def test_version_and_help_do_not_import_torch():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.stdout
    code = "import sys; from synthgate.cli import app; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_phantom_then_ingest_then_info(tmp_path):
    r = runner.invoke(app, ["data", "phantom", "--subjects", "3", "--shape", "24,24,16", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["data", "ingest", str(tmp_path / "c"), "--out", str(tmp_path / "s"), "--size", "16",
                            "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["channels"] == ["t1", "t1c", "t2", "flair", "label"]
    assert sum(c["subjects"] for c in result["counts"].values()) == 3
    r = runner.invoke(app, ["data", "info", str(tmp_path / "s" / "train"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["channels"][-1] == "label"


def test_exit_codes(tmp_path):
    r = runner.invoke(app, ["data", "ingest", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 5 and "missing" in r.output
    r = runner.invoke(app, ["data", "ingest", str(tmp_path), "--out", str(tmp_path / "o"), "--split", "1,2"])
    assert r.exit_code == 2 and "--split" in r.output
    r = runner.invoke(app, ["data", "phantom", "--subjects", "0", "--out", str(tmp_path / "p")])
    assert r.exit_code == 2 and "--subjects" in r.output
    r = runner.invoke(app, ["data", "ingest", str(tmp_path), "--out", str(tmp_path / "o"), "--normalise", "fancy"])
    assert r.exit_code == 2 and "fancy" in r.output


def test_convert_image_folder_with_skip(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    np.save(d / "a.npy", np.random.default_rng(0).random((2, 8, 8)).astype(np.float32))
    np.save(d / "b.npy", np.full((2, 8, 8), np.inf, np.float32))
    r = runner.invoke(app, ["data", "convert", str(d), "--out", str(tmp_path / "st")])
    assert r.exit_code == 5 and "b.npy" in r.output and not (tmp_path / "st").exists()
    r = runner.invoke(app, ["data", "convert", str(d), "--out", str(tmp_path / "st"), "--on-error", "skip"])
    assert r.exit_code == 0 and "skipped" in r.output and "b.npy" in r.output
    assert (tmp_path / "st" / "images.npy").exists()
