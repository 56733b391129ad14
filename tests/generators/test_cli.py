from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from synthgate.cli import app
from synthgate.data.store import read_store, write_store
from tests.generators.conftest import tiny_config
from tests.sets import make_set

runner = CliRunner()


def _setup(tmp_path, kind="diffusion", steps=3):
    store = write_store(make_set(n=4, size=16, pattern="brain"), tmp_path / "store")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(tiny_config(kind, steps=steps).to_json()))
    return store, cfg


def test_train_resume_and_sample(tmp_path):
    store, cfg = _setup(tmp_path)
    args = [
        "generators",
        "train",
        "diffusion",
        "--data",
        str(store),
        "--out",
        str(tmp_path / "run"),
        "--config",
        str(cfg),
        "--device",
        "cpu",
        "--json",
    ]
    r = runner.invoke(app, [*args, "--max-steps", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 2
    r = runner.invoke(app, [*args, "--resume"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["steps"] == 3 and res["start_step"] == 2
    r = runner.invoke(
        app,
        [
            "generators",
            "sample",
            str(tmp_path / "run"),
            "--n",
            "3",
            "--out",
            str(tmp_path / "syn"),
            "--seed",
            "5",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    syn = read_store(tmp_path / "syn")
    assert len(syn) == 3 and syn.ids[0] == "syn-000000" and np.all(syn.seeds >= 0)
    assert set(np.unique(syn.images[:, -1]).tolist()) <= {0.0, 1.0, 2.0, 4.0}


def test_train_stylegan2_with_overrides(tmp_path):
    store, cfg = _setup(tmp_path, "stylegan2")
    r = runner.invoke(
        app,
        [
            "generators",
            "train",
            "stylegan2",
            "--data",
            str(store),
            "--out",
            str(tmp_path / "run"),
            "--config",
            str(cfg),
            "--steps",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "stylegan2: step 1" in r.stdout
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 1


def test_failure_exit_codes(tmp_path):
    store, cfg = _setup(tmp_path)
    base = ["generators", "train", "diffusion", "--config", str(cfg), "--device", "cpu"]
    r = runner.invoke(app, [*base, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert r.exit_code == 5, r.output
    r = runner.invoke(app, [*base, "--data", str(store), "--out", str(tmp_path / "r"), "--preset", "huge"])
    assert r.exit_code == 2, r.output
    (tmp_path / "bad.json").write_text('{"steps": 2, "depth": 3}')
    r = runner.invoke(
        app,
        [
            "generators",
            "train",
            "diffusion",
            "--data",
            str(store),
            "--out",
            str(tmp_path / "r"),
            "--config",
            str(tmp_path / "bad.json"),
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 2 and "depth" in r.output, r.output
    r = runner.invoke(app, [*base, "--data", str(store), "--out", str(store)])  # exists, no --resume
    assert r.exit_code == 2 and "already exists" in r.output, r.output
    r = runner.invoke(
        app,
        ["generators", "sample", str(tmp_path / "nope"), "--n", "2", "--out", str(tmp_path / "s"), "--device", "cpu"],
    )
    assert r.exit_code == 5, r.output
    r = runner.invoke(app, ["generators", "sample", str(store), "--n", "2", "--out", str(store)])
    assert r.exit_code == 2, r.output


def test_generator_cli_and_package_import_without_torch():
    import subprocess
    import sys

    code = "import sys, synthgate.generators, synthgate.cli.generators; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_train_with_the_memorization_monitor(tmp_path):
    store, cfg = _setup(tmp_path, steps=4)
    holdout = write_store(make_set(n=4, size=16, pattern="brain", seed=9, prefix="ho"), tmp_path / "holdout")
    args = ["generators", "train", "diffusion", "--data", str(store), "--out", str(tmp_path / "run"),
            "--config", str(cfg), "--device", "cpu"]
    r = runner.invoke(app, [*args, "--stop-on-memorization", "0.5"])
    assert r.exit_code == 2 and "--monitor" in r.output and not (tmp_path / "run").exists()
    r = runner.invoke(app, [*args, "--monitor", str(holdout), "--monitor-every", "2", "--stop-on-memorization", "0.99",
                            "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    points = res["monitor"]["points"]
    assert [p["step"] for p in points] == [2, 4] and all(p["n"] == 32 for p in points)
    assert res["monitor"]["kept"]["kept_step"] == 4 and not res["monitor"]["kept"]["stop"]
    assert (tmp_path / "run" / "monitor.png").is_file()
