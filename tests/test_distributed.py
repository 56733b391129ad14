"""torchrun and torch.distributed: the launch environment, sharding, error agreement, and 2 gloo ranks on the CPU
giving the same outputs as one process.

The 2-rank commands all run in ONE torchrun launch (tests/dist_worker.py), in a session of its own that is
killed whole on timeout, so no process outlives the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from synthgate import distributed
from synthgate.audit.planted import plant_copies
from synthgate.cli import app
from synthgate.data.store import write_store
from synthgate.errors import UsageError
from tests.audit.conftest import blob_images
from tests.audit.conftest import make_set as blob_set
from tests.generators.conftest import tiny_config
from tests.segment.helpers import make_tumour_set
from tests.sets import make_set

runner = CliRunner()
WORKER = Path(__file__).with_name("dist_worker.py")
LAUNCH_TIMEOUT_S = 150
TORCHRUN_ENV = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}


# --- the launch environment, in-process ---------------------------------------------------------------


def test_no_torchrun_environment_is_one_process() -> None:
    launch = distributed.read_launch({"MASTER_ADDR": "node0", "PATH": "/bin"})  # a stray address is not a launch
    assert launch == distributed.Launch() and launch.is_main and not launch.distributed


def test_full_environment_is_read() -> None:
    launch = distributed.read_launch({**TORCHRUN_ENV, "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (launch.rank, launch.world_size, launch.local_rank) == (3, 4, 1)
    assert launch.distributed and not launch.is_main
    assert distributed.device_for("cuda", launch) == "cuda:1" and distributed.device_for("cpu", launch) == "cpu"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RANK": "0"}, "WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT not"),
        ({k: v for k, v in TORCHRUN_ENV.items() if k != "MASTER_PORT"}, "MASTER_PORT not"),
        ({**TORCHRUN_ENV, "RANK": "two"}, "must be integers"),
        ({**TORCHRUN_ENV, "RANK": "2"}, "0 <= RANK < WORLD_SIZE"),
    ],
)
def test_partial_or_bad_environment_is_a_usage_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        distributed.read_launch(env)


def test_cli_partial_environment_fails_with_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*distributed.RANK_VARS, *distributed.RENDEZVOUS_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    r = runner.invoke(app, ["data", "phantom", "--out", str(tmp_path / "p"), "--subjects", "1"])
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and "incomplete torchrun environment" in r.output
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_command_that_does_not_spread_runs_on_rank_0_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rank: str
) -> None:
    for var, value in {**TORCHRUN_ENV, "RANK": rank, "LOCAL_RANK": rank}.items():
        monkeypatch.setenv(var, value)
    out = tmp_path / "p"
    r = runner.invoke(app, ["data", "phantom", "--out", str(out), "--subjects", "1", "--shape", "16,16,16"])
    assert r.exit_code == 0, r.output
    assert out.exists() == (rank == "0")  # no process group needed: nothing waits for rank 1


def test_every_option_reaches_synthgate_through_torchrun() -> None:
    """torchrun's argument parser takes any abbreviation of its own options out of the command line (``--n`` is
    ambiguous with ``--nnodes``): every synthgate command must have a spelling that gets through."""
    import typer
    from torch.distributed.run import get_args_parser

    parser = get_args_parser()

    def commands(c: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        if hasattr(c, "commands"):
            for name, sub in c.commands.items():
                yield from commands(sub, [*path, name])
        else:
            yield path, c

    blocked = []
    for path, command in commands(typer.main.get_command(app), []):
        for param in command.params:
            if param.param_type_name != "option":
                continue
            passes = []
            for spelling in param.opts:
                argv = ["--standalone", "-m", "synthgate", *path, spelling, "1"]
                try:
                    passes.append(parser.parse_args(argv).training_script_args[-2:] == [spelling, "1"])
                except SystemExit:
                    passes.append(False)
            if not any(passes):
                blocked.append((" ".join(path), param.opts))
    assert blocked == []


def test_shard_covers_every_item_once() -> None:
    for n in (0, 1, 5, 6):
        parts = [list(distributed.shard(n, r, 3)) for r in range(3)]
        assert sorted(i for p in parts for i in p) == list(range(n))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert list(distributed.shard(4)) == [0, 1, 2, 3]  # no process group: everything


def test_without_a_group_helpers_are_one_process() -> None:
    assert distributed.gather_checked(lambda: 7) == [7]
    assert distributed.on_main(lambda: "x") == "x"
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    with pytest.raises(ValueError, match="boom"):  # errors pass through unchanged
        distributed.gather_checked(lambda: (_ for _ in ()).throw(ValueError("boom")))


# --- 2 gloo ranks against one process -------------------------------------------------------------------


def _torchrun(plan: Path, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    """Launch the worker under torchrun in its own session; kill the whole session on timeout."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [*cmd, str(WORKER), str(plan)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {LAUNCH_TIMEOUT_S} s:\n{output[-3000:]}")
    with pytest.raises(ProcessLookupError):  # nothing of the launch is left behind
        os.killpg(proc.pid, 0)
    return subprocess.CompletedProcess(proc.args, proc.returncode, output, "")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """The single-process references run with one thread, as each torchrun worker does (OMP_NUM_THREADS=1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> dict[str, Path]:
    from synthgate.generators import train_generator

    root = tmp_path_factory.mktemp("dist-inputs")
    generator_data = make_set(n=6, size=16, pattern="brain")
    train_generator(tiny_config("diffusion", steps=2), generator_data, root / "run")  # type: ignore[arg-type]
    configs = {}
    for kind in ("diffusion", "stylegan2"):
        configs[kind] = root / f"{kind}.json"
        configs[kind].write_text(json.dumps(tiny_config(kind, steps=3, batch_size=2).to_json()))  # type: ignore[attr-defined]
    # trained 2 of 3 steps on one process; the 2-rank launch resumes it
    one_rank = tiny_config("diffusion", steps=3, batch_size=2)
    train_generator(one_rank, generator_data, root / "resume-on-2", max_steps=2)  # type: ignore[arg-type]
    # a finished one-process run that the 2-rank launch replaces (--overwrite), then extends (--resume --steps)
    train_generator(tiny_config("diffusion", steps=1), generator_data, root / "overwrite-on-2")  # type: ignore[arg-type]
    audit_train = blob_set(blob_images(24, size=48, seed=1), "tr")
    copies, _ = plant_copies(audit_train, 2, seed=0)  # every kind of copy, twice
    broken = blob_images(24, size=48, seed=1)
    broken[20, 0, 10, 10] = np.nan  # in the second half of the rows: only rank 1's shard reads it
    return {
        "audit_train": write_store(audit_train, root / "audit-train"),
        "audit_train_nan": write_store(blob_set(broken, "tr"), root / "audit-train-nan"),
        "audit_synthetic": write_store(
            blob_set(np.concatenate([blob_images(20, size=48, seed=3), copies.images]), "sy"), root / "audit-syn"
        ),
        "audit_holdout": write_store(blob_set(blob_images(12, size=48, seed=2), "ho"), root / "audit-holdout"),
        "generator_data": write_store(generator_data, root / "generator-data"),
        "diffusion_config": configs["diffusion"],
        "stylegan2_config": configs["stylegan2"],
        "resume_on_2": root / "resume-on-2",
        "overwrite_on_2": root / "overwrite-on-2",
        "synthetic": write_store(make_tumour_set(2, 4, 32, seed=1, prefix="gen"), root / "syn"),
        "train": write_store(make_tumour_set(2, 4, 32, seed=2, prefix="tr"), root / "train"),
        "test": write_store(make_tumour_set(2, 4, 32, seed=3, prefix="te"), root / "test"),
        "run": root / "run",
    }


def _utility_args(inputs: dict[str, Path], out: Path) -> list[str]:
    return [
        "audit", "utility", "--real-train", str(inputs["train"]), "--real-test", str(inputs["test"]),
        "--synthetic", str(inputs["synthetic"]), "--out", str(out), "--epochs", "1", "--seeds", "1",
        "--batch-size", "4", "--device", "cpu",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def two_ranks(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every 2-rank command of this module, in one torchrun launch."""
    root = tmp_path_factory.mktemp("dist-run")
    commands = [
        _audit_args(inputs, root / "audit"),
        [*_audit_args(inputs, root / "audit-sharded"), "--shard-index"],
        [*_audit_args(inputs, root / "audit-sharded-null", holdout=False), "--shard-index"],
        _utility_args(inputs, root / "utility"),
        _sample_args(inputs, root / "samples"),
        _train_args(inputs, "diffusion", root / "diffusion", "--max-steps", "2"),
        _train_args(inputs, "stylegan2", root / "stylegan2"),
        _train_args(inputs, "diffusion", inputs["resume_on_2"], "--resume"),
        _train_args(inputs, "diffusion", inputs["overwrite_on_2"], "--max-steps", "2", "--overwrite"),
        _train_args(inputs, "diffusion", inputs["overwrite_on_2"], "--resume", "--steps", "4"),
        _train_args(inputs, "diffusion", inputs["overwrite_on_2"]),  # exists, no --overwrite: exit 2 on both
        # a NaN image in rank 1's shard: rank 1 fails reading it, rank 0 must stop too (exit 5 on both, no hang)
        ["audit", "memorization", "--train", str(inputs["audit_train_nan"]), "--synthetic",
         str(inputs["audit_synthetic"]), "--holdout", str(inputs["audit_holdout"]), "--device", "cpu",
         "--out", str(root / "audit-nan"), "--shard-index"],
        # the same without --shard-index: every rank builds the whole index, and both stop with exit 5
        ["audit", "memorization", "--train", str(inputs["audit_train_nan"]), "--synthetic",
         str(inputs["audit_synthetic"]), "--holdout", str(inputs["audit_holdout"]), "--device", "cpu",
         "--out", str(root / "audit-nan-spread")],
    ]
    plan = root / "plan.json"
    plan.write_text(json.dumps({"commands": commands}))
    done = _torchrun(plan)
    assert done.returncode == 0, done.stdout[-4000:]
    ranks = [json.loads((root / f"rank-{r}.json").read_text()) for r in range(2)]
    return {"root": root, "ranks": ranks, "log": done.stdout}


def test_two_ranks_ran_every_command_and_agree_on_failures(two_ranks: dict[str, Any]) -> None:
    r0, r1 = two_ranks["ranks"]
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    assert r0["codes"] == r1["codes"] == [0] * (len(r0["codes"]) - 3) + [2, 5, 5], two_ranks["log"][-3000:]
    assert not (two_ranks["root"] / "audit-nan").exists() and not (two_ranks["root"] / "audit-nan-spread").exists()
    assert r0["gathered"] == r1["gathered"] == [0, 10]
    assert r1["agreement"] == {"raised": "InputError", "code": 5, "message": "rank one's input is bad"}
    assert r0["agreement"] == {"raised": "RankFailed", "code": 5, "message": "rank 1: rank one's input is bad"}


def _without_timings(doc: dict[str, Any]) -> dict[str, Any]:
    doc = {k: v for k, v in doc.items() if k != "created"}
    for mode in doc["modes"].values():
        for run in mode["per_seed"]:
            del run["train_seconds"], run["slices_per_second"]
    return doc


def test_utility_on_two_ranks_equals_one_process(
    two_ranks: dict[str, Any], inputs: dict[str, Path], tmp_path: Path, one_thread: None
) -> None:
    r = runner.invoke(app, _utility_args(inputs, tmp_path / "utility"))
    assert r.exit_code == 0, r.output
    single = json.loads((tmp_path / "utility" / "utility.json").read_text())
    spread = json.loads((two_ranks["root"] / "utility" / "utility.json").read_text())
    assert [run["seed"] for run in spread["modes"]["mixed"]["per_seed"]] == [0]  # 3 networks: 2 on rank 0, 1 on rank 1
    assert _without_timings(spread) == _without_timings(single)
    private = "private_subject_map.csv"
    assert (two_ranks["root"] / "utility" / private).read_text() == (tmp_path / "utility" / private).read_text()


def _sample_args(inputs: dict[str, Path], out: Path) -> list[str]:
    # 7 images in batches of 2: rank 0 makes batches 0 and 2, rank 1 batches 1 and 3 (a single image)
    return ["generators", "sample", str(inputs["run"]), "--n", "7", "--batch-size", "2", "--seed", "4",
            "--out", str(out), "--device", "cpu"]  # fmt: skip


def test_sampling_on_two_ranks_writes_the_single_process_store(
    two_ranks: dict[str, Any], inputs: dict[str, Path], tmp_path: Path, one_thread: None
) -> None:
    r = runner.invoke(app, _sample_args(inputs, tmp_path / "samples"))
    assert r.exit_code == 0, r.output
    single, spread = tmp_path / "samples", two_ranks["root"] / "samples"
    names = sorted(p.name for p in single.iterdir())
    assert names == sorted(p.name for p in spread.iterdir()) and "images.npy" in names
    for name in names:
        assert (spread / name).read_bytes() == (single / name).read_bytes(), name


def _train_args(inputs: dict[str, Path], kind: str, out: Path, *extra: str) -> list[str]:
    args = ["generators", "train", kind, "--data", str(inputs["generator_data"]), "--out", str(out)]
    if "--resume" not in extra:
        args += ["--config", str(inputs[f"{kind}_config"])]
    return [*args, "--device", "cpu", *extra]


def _checkpoint(run: Path) -> dict[str, Any]:
    import torch

    return torch.load(run / "checkpoint.pt", weights_only=True)


def _assert_trained_on_two_ranks(run: Path, steps: int, position: int) -> None:
    """``position``: training images read, per-rank batch 2 x ranks per step."""
    state = _checkpoint(run)
    assert (state["step"], state["world_size"], state["position"]) == (steps, 2, position)
    hashes = state["replica_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]  # both ranks held the same weights, EMA and optimiser
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log][-1] == steps
    assert all(v == v and abs(v) < 1e6 for r in log for k, v in r.items() if k.startswith("loss"))
    assert len(list(run.glob("checkpoint*"))) == 1 and not list(run.glob("*.tmp*"))


@pytest.mark.parametrize("kind", ["diffusion", "stylegan2"])
def test_generator_trains_on_two_ranks_with_equal_replicas(two_ranks: dict[str, Any], kind: str) -> None:
    steps = 2 if kind == "diffusion" else 3
    _assert_trained_on_two_ranks(two_ranks["root"] / kind, steps, steps * 2 * 2)


def test_two_ranks_overwrite_a_run_atomically_and_extend_it(two_ranks: dict[str, Any], inputs: dict[str, Path]) -> None:
    """Rank 0 trains into the temporary folder that replaces the one-process run, then --resume --steps 4
    extends it; the refused third launch (no --overwrite) changes nothing and leaves nothing behind."""
    run = inputs["overwrite_on_2"]
    _assert_trained_on_two_ranks(run, 4, 4 * 2 * 2)
    assert json.loads((run / "config.json").read_text())["steps"] == 4
    assert (run / "training_images.csv").exists() and (run / "versions.json").exists()
    assert [p.name for p in run.parent.iterdir() if p.name.startswith(".")] == []  # no temporary, no .old


def test_a_two_rank_run_resumes_on_one_and_the_reverse(
    two_ranks: dict[str, Any], inputs: dict[str, Path], one_thread: None
) -> None:
    _assert_trained_on_two_ranks(inputs["resume_on_2"], 3, 2 * 2 + 2 * 2)  # 1 process for 2 steps, 2 ranks for 1
    run = two_ranks["root"] / "diffusion"
    r = runner.invoke(app, [*_train_args(inputs, "diffusion", run, "--resume"), "--json"])
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout)
    assert (done["start_step"], done["steps"]) == (2, 3)
    state = _checkpoint(run)
    assert (state["step"], state["world_size"], state["position"]) == (3, 1, 2 * 4 + 2)


def _audit_args(inputs: dict[str, Path], out: Path, holdout: bool = True) -> list[str]:
    # 40 synthetic images in query blocks of 31 at 48 px within 16 MiB: rank 0 scores one block, rank 1 the other;
    # the 12 holdout images are one block, so rank 1 has none of them
    null = ["--holdout", str(inputs["audit_holdout"])] if holdout else []
    return ["audit", "memorization", "--train", str(inputs["audit_train"]), "--synthetic",
            str(inputs["audit_synthetic"]), *null, "--max-memory", "16M", "--device", "cpu",
            "--out", str(out)]  # fmt: skip


@pytest.mark.parametrize("holdout", [True, False])
def test_sharded_index_on_two_ranks_equals_one_process(
    two_ranks: dict[str, Any], inputs: dict[str, Path], tmp_path: Path, one_thread: None, holdout: bool
) -> None:
    """Each rank caches half of --train; the matches, scores, calibration and flags equal one process's (with a
    holdout, and with the subject-disjoint null, whose queries come from the sharded cache)."""
    r = runner.invoke(app, _audit_args(inputs, tmp_path / "audit", holdout))
    assert r.exit_code == 0, r.output
    single = tmp_path / "audit"
    sharded = two_ranks["root"] / ("audit-sharded" if holdout else "audit-sharded-null")
    matches = (single / "matches.csv").read_text()
    assert (sharded / "matches.csv").read_text() == matches
    assert matches.count("true") >= 10
    docs = [json.loads((d / "summary.json").read_text()) for d in (single, sharded)]
    assert docs[1]["settings"]["shard_index"] and docs[1]["settings"]["feature_cache"].endswith("over 2 ranks)")
    for doc in docs:  # the diagnostics of how the work was split differ; what was found does not
        for key in ("created", "seconds", "settings"):
            del doc[key]
        del doc["counts"]["pairs_scored_exactly"]
    assert docs[0] == docs[1]


def test_memorization_audit_on_two_ranks_equals_one_process(
    two_ranks: dict[str, Any], inputs: dict[str, Path], tmp_path: Path, one_thread: None
) -> None:
    r = runner.invoke(app, _audit_args(inputs, tmp_path / "audit"))
    assert r.exit_code == 0, r.output
    single, spread = tmp_path / "audit", two_ranks["root"] / "audit"
    matches = (single / "matches.csv").read_text()
    assert (spread / "matches.csv").read_text() == matches
    assert matches.count("true") >= 10  # the planted copies are found
    summary = [json.loads((d / "summary.json").read_text()) for d in (single, spread)]
    for doc in summary:
        del doc["created"], doc["seconds"]  # when and how long, not what
    assert summary[0] == summary[1]
    assert sorted(p.name for p in spread.iterdir()) == sorted(p.name for p in single.iterdir())
