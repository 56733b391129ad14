"""Rows 5, 9 and 17: generator training keeps an old run on a failed --overwrite, refuses a batch that cannot
fit in memory, and extends a finished run with --resume --steps."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from synthgate.data.store import write_store
from synthgate.errors import UsageError
from synthgate.generators.memory import check_batch_fits, step_memory
from tests.faults.conftest import cli, leftovers
from tests.generators.conftest import tiny_config
from tests.sets import make_set


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    good = write_store(make_set(8, pattern="brain"), tmp_path / "data")
    bad_set = make_set(8, pattern="brain", seed=1)
    x = np.array(bad_set.images)
    x[3, -1, 0, 0] = 3.0  # a label value brats2021 does not have
    bad = write_store(replace(bad_set, images=x), tmp_path / "bad")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(tiny_config("diffusion", steps=2).to_json()))  # type: ignore[attr-defined]
    return {"good": good, "bad": bad, "config": cfg, "root": tmp_path}


def _train(s: dict[str, Path], out: Path, *extra: str | Path, data: str = "good") -> tuple[int, str]:
    r = cli("generators", "train", "diffusion", "--data", s[data], "--out", out, "--config", s["config"],
            "--device", "cpu", *extra)
    return r.exit_code, r.output


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_row5_failed_overwrite_keeps_the_old_run(setup: dict[str, Path]) -> None:
    out = setup["root"] / "run"
    assert _train(setup, out)[0] == 0
    before = _snapshot(out)
    code, output = _train(setup, out, "--overwrite", data="bad")
    assert code == 5 and "label" in output, output
    assert _snapshot(out) == before
    assert leftovers(out) == [out.name]
    code, output = _train(setup, out, "--overwrite", "--steps", "3")  # a good overwrite replaces it whole
    assert code == 0, output
    assert json.loads((out / "config.json").read_text())["steps"] == 3
    assert leftovers(out) == [out.name]


def test_row9_batch_that_cannot_fit_is_refused_with_the_size_that_fits(setup: dict[str, Path]) -> None:
    out = setup["root"] / "run"
    code, output = _train(setup, out, "--batch-size", "100000000")
    assert code == 2, output
    assert "--batch-size 100000000" in output and "or less" in output and "available" in output
    assert leftovers(out) == []


def test_row9_the_named_batch_size_fits() -> None:
    cfg = replace(tiny_config("diffusion"), batch_size=512)  # type: ignore[type-var]
    shape = (3, 16, 16)
    fixed, per_image = step_memory(cfg, shape)  # type: ignore[arg-type]
    assert fixed > 0 and per_image > 4 * 3 * 16 * 16
    avail = int((fixed + 100 * per_image) / 0.8)  # room for about 100 images
    with pytest.raises(UsageError, match=r"--batch-size 512: .* use --batch-size (\d+) or less") as e:
        check_batch_fits(cfg, shape, "cpu", available=avail)  # type: ignore[arg-type]
    fit = int(str(e.value).split("use --batch-size ")[1].split()[0])
    assert 90 <= fit <= 100
    check_batch_fits(replace(cfg, batch_size=fit), shape, "cpu", available=avail)  # type: ignore[type-var]


def test_row17_resume_with_steps_extends_a_finished_run(setup: dict[str, Path]) -> None:
    ext, ref = setup["root"] / "extended", setup["root"] / "reference"
    assert _train(setup, ext)[0] == 0  # 2 steps, finished
    code, output = _train(setup, ext, "--resume", "--steps", "4")
    assert code == 0, output
    assert _train(setup, ref, "--steps", "4")[0] == 0
    a = torch.load(ext / "checkpoint.pt", weights_only=False)
    b = torch.load(ref / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for k, v in b["trainer"]["model"].items():
        assert torch.equal(a["trainer"]["model"][k], v), k
    code, output = _train(setup, ext, "--resume", "--steps", "3")
    assert code == 2 and "--steps 3" in output and "4 steps" in output, output
    code, output = _train(setup, ext, "--resume", "--batch-size", "8")
    assert code == 2 and "--batch-size" in output and "--resume" in output, output
