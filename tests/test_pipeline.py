"""pipeline.py: each stage loads, computes, writes and returns a typed result; outputs are refused before work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthgate import pipeline
from synthgate.audit.memorization import MemorizationConfig
from synthgate.data.store import read_store, write_store
from synthgate.errors import UsageError
from synthgate.generators.monitor import MonitorConfig
from tests.generators.conftest import tiny_config
from tests.sets import make_set


def test_an_existing_output_is_refused_before_any_input_is_read(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    missing = tmp_path / "no-such-store"
    with pytest.raises(UsageError, match="already exists"):
        pipeline.audit_memorization(missing, missing, None, tmp_path / "out")
    with pytest.raises(UsageError, match="already exists"):
        pipeline.audit_utility(missing, missing, missing, tmp_path / "out")
    with pytest.raises(UsageError, match="already exists"):
        pipeline.sample(missing, 2, tmp_path / "out")


def test_audit_memorization_reads_paths_or_sets_and_writes_its_folder(tmp_path: Path) -> None:
    train, syn, hold = make_set(n=8, seed=0), make_set(n=4, seed=1, prefix="sy"), make_set(n=6, seed=2, prefix="ho")
    syn = syn.subset(range(4))
    syn.images[0] = train.images[3]  # one copy
    write_store(train, tmp_path / "train")
    stage = pipeline.audit_memorization(tmp_path / "train", syn, hold, tmp_path / "audit",
                                        MemorizationConfig(transforms=()))
    assert bool(stage.result.flagged[0]) and stage.result.counts["train"] == 8
    saved = json.loads((tmp_path / "audit" / "summary.json").read_text())
    out = stage.to_json()
    assert out["out"] == str(tmp_path / "audit") and out["counts"] == saved["counts"]


def test_train_and_sample_through_the_pipeline(tmp_path: Path) -> None:
    data = make_set(n=6, size=16, pattern="brain")
    write_store(data, tmp_path / "train")
    with pytest.raises(UsageError, match="--monitor"):
        pipeline.train(tiny_config("diffusion", steps=2), tmp_path / "train", tmp_path / "run",  # type: ignore[arg-type]
                       monitor=MonitorConfig(every=1))
    assert not (tmp_path / "run").exists()
    trained = pipeline.train(tiny_config("diffusion", steps=3), tmp_path / "train", tmp_path / "run")  # type: ignore[arg-type]
    summary = trained.to_json()
    assert summary["steps"] == 3 and summary["n_train"] == 6 and summary["monitor"] is None
    sampled = pipeline.sample(tmp_path / "run", 3, tmp_path / "syn", sample_steps=2)
    assert sampled.to_json() == {"store": str(tmp_path / "syn"), "n": 3, "kind": "diffusion", "step": 3,
                                 "device": "cpu", "checkpoint": None}
    assert len(read_store(tmp_path / "syn")) == 3
