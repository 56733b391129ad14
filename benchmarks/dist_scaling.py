"""Scaling from 1 to N torchrun processes on this machine: speed-up and efficiency (measured, not asserted).

    python benchmarks/dist_scaling.py [--procs 1,2] [--workloads utility,sample,train] [--size 32]
        [--subjects 6] [--device cpu]

The driver makes a phantom cohort, ingests it and trains a tiny generator once, then launches
``torchrun --standalone --nproc-per-node P`` on this script for every P. Each worker times every workload between
two barriers (the launch and imports are not timed):

* ``audit``: the memorization audit of the test split against the training split (holdout calibration) within
  16 MiB, so the queries come in several blocks (spread over the ranks);
* ``audit-shard``: the same audit with ``shard_index`` (each rank caches part of the training split);
* ``utility``: the utility audit, 3 modes x 2 seeds (6 independent networks), 2 epochs each;
* ``sample``: ``generators sample`` of 32 images in batches of 4;
* ``train``: diffusion training steps at a fixed per-rank batch (the global batch grows with the ranks), so its
  speed-up is in images per second (weak scaling); the others are fixed work (strong scaling).

Speed-up = time on 1 process / time on P (train: throughput on P / throughput on 1); efficiency =
speed-up / P. Each worker has one CPU thread (torchrun's OMP_NUM_THREADS=1), so on a machine with fewer free
cores than processes the figures fall; say how loaded the machine was when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORKLOADS = ("audit", "audit-shard", "utility", "sample", "train")


def _prepare(root: Path, args: argparse.Namespace) -> None:
    from synthgate.data.ingest import IngestConfig, ingest_cohort
    from synthgate.data.phantom import write_phantom_cohort
    from synthgate.data.readers import load_set
    from synthgate.generators import preset, train_generator

    cohort = write_phantom_cohort(root / "cohort", args.subjects, seed=0, shape=(args.size, args.size, 24))
    ingest_cohort(cohort, root / "stores", IngestConfig(size=args.size))
    cfg = preset("diffusion", "tiny")
    train_generator(cfg, load_set(root / "stores" / "train"), root / "run", max_steps=1)


def _time(fn: Any) -> float:
    from synthgate import distributed

    def run() -> None:
        fn()  # the result stays on its rank: only the barrier travels

    distributed.gather_checked(lambda: None)  # a barrier that also agrees on failures
    t0 = time.perf_counter()
    distributed.gather_checked(run)
    return time.perf_counter() - t0


def _worker(root: Path, workloads: list[str], device: str) -> None:
    from dataclasses import replace

    from synthgate import distributed
    from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit
    from synthgate.data.readers import load_set
    from synthgate.generators import preset, sample_generator, train_generator
    from synthgate.segment.utility import UtilityConfig, run_utility

    launch = distributed.read_launch()
    distributed.init(launch)
    train, test = load_set(root / "stores" / "train"), load_set(root / "stores" / "test")
    figures: dict[str, float] = {}
    if "audit" in workloads:
        holdout = load_set(root / "stores" / "holdout")
        mcfg = MemorizationConfig(max_memory=16 << 20, device=device)
        figures["audit_s"] = _time(lambda: run_memorization_audit(train, test, holdout, mcfg))
    if "audit-shard" in workloads:  # the same audit with the training index sharded over the ranks
        holdout = load_set(root / "stores" / "holdout")
        scfg = MemorizationConfig(max_memory=16 << 20, device=device, shard_index=True)
        figures["audit-shard_s"] = _time(lambda: run_memorization_audit(train, test, holdout, scfg))
    if "utility" in workloads:
        # the training set stands in for a synthetic one: 3 modes x 2 seeds = 6 independent networks
        ucfg = UtilityConfig.preset("quick", seeds=(0, 1), mode="all", epochs=2, augment=False)
        figures["utility_s"] = _time(lambda: run_utility(train, train, test, ucfg, device=device))
    if "sample" in workloads:
        figures["sample_s"] = _time(lambda: sample_generator(root / "run", 32, batch_size=4, device=device))
    if "train" in workloads:
        steps, per_rank = 12, 8
        cfg = replace(preset("diffusion", "tiny"), batch_size=per_rank, grid_every=0, checkpoint_every=0)
        out = root / f"train-{launch.world_size}"
        seconds = _time(lambda: train_generator(cfg, train, out, device=device, max_steps=steps, overwrite=True))
        figures["train_img_s"] = steps * per_rank * launch.world_size / seconds
    if launch.is_main:
        (root / f"times-{launch.world_size}.json").write_text(json.dumps(figures))


def _launch(root: Path, procs: int, workloads: list[str], device: str) -> dict[str, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}", __file__]
    cmd += ["--worker", str(root), "--workloads", ",".join(workloads), "--device", device]
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=3600)
    return json.loads((root / f"times-{procs}.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    if args.worker is not None:
        _worker(args.worker, workloads, args.device)
        return
    procs = [int(p) for p in args.procs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _prepare(root, args)
        times = {p: _launch(root, p, workloads, args.device) for p in procs}
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} after the runs; {args.size} px, device {args.device}")
    base = times[procs[0]]
    for key in base:
        weak = key.endswith("img_s")
        for p in procs:
            value = times[p][key]
            speedup = value / base[key] if weak else base[key] / value
            unit = "images/s" if weak else "s"
            print(
                f"{key.split('_')[0]:8s} {p} proc: {value:8.2f} {unit:8s} speed-up {speedup:4.2f} "
                f"efficiency {speedup / p * procs[0]:4.0%}"
            )


if __name__ == "__main__":
    main()
