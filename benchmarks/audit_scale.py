"""The memorization audit at the study's scale, end to end, against its GEMM floor measured in the same run.

Usage:

    python benchmarks/audit_scale.py [--train 10000] [--synthetic 1000] [--holdout 500] [--size 128]
        [--transforms hflip robust] [--scores all pearson] [--backend torch] [--max-memory 2G]
        [--workdir /tmp/audit_scale] [--json]

It streams three float16 slice stores to ``--workdir`` (never holding a set in memory): brain-like slices of
procedural subjects (a smooth 3D texture inside an ellipsoid, 4 sequences + a label, 100 slices per subject);
the synthetic set is slices of other subjects plus ``--planted`` mirrored copies of training slices. Then, for
each ``--transforms`` setting and each ``--scores`` set (``all``: the default scores; ``pearson``,
``pearson,structure``: fewer), it runs ``synthgate audit memorization`` as a subprocess and prints

* the wall time and its ratio to the floor: one numpy sgemm of the same (queries x 2 N x d) shape (queries =
  synthetic + holdout, 2 N = training images and mirrors), timed in this run in blocks of training rows, before
  every audit and after the last: each run's ratio is to the mean of the floors just before and after it, so
  a change of the host's load during the benchmark moves both (on a shared 2-core host the same audit's ratio
  moved 1.54x -> 1.97x between runs against one floor timed at the start). The stores are read once
  beforehand, so every run finds them in the page cache;
* the peak RSS of the audit process, against ``--max-memory`` plus the interpreter constant (the peak RSS of
  the same command on a 4-image store);
* the number of exhaustive fallbacks and of exactly scored pairs, and the wall time of each stage;
* how many planted copies were flagged;

and, where a setting ran with fewer scores too, what the added scores cost: wall time over that of the run
without them (issue 10: at most +50 % per added score).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SLICES_PER_SUBJECT = 100
#: The holdout's slices per subject: 10 subjects in the default 500, so the audit calibrates on the holdout alone
#: (a holdout of fewer than 10 subjects is pooled with the training subjects' null: up to --max-null more queries,
#: which this benchmark does not time)
HOLDOUT_SLICES_PER_SUBJECT = 50
CHANNELS = ("t1", "t1c", "t2", "flair", "label")


def subject_volume(rng: np.random.Generator, size: int, n_slices: int) -> np.ndarray:
    """n_slices x 5 x size x size float32: a procedural brain (smooth texture in an ellipsoid) and a label."""
    import torch
    import torch.nn.functional as F

    low = torch.from_numpy(rng.standard_normal((1, 4, 12, 24, 24)).astype(np.float32))
    tex = F.interpolate(low, size=(n_slices, size, size), mode="trilinear", align_corners=False)[0]
    z, y, x = np.meshgrid(np.linspace(-1, 1, n_slices), np.linspace(-1, 1, size), np.linspace(-1, 1, size),
                          indexing="ij")
    ry, rx = rng.uniform(0.7, 0.85, 2)
    inside = (z / 1.1) ** 2 + (y / ry) ** 2 + (x / rx) ** 2 <= 1.0
    base = np.array([0.5, 0.55, 0.4, 0.45], np.float32)[:, None, None, None]
    img = np.clip(base + 0.25 * tex.numpy(), 0, 1) * inside[None]
    ty, tx, tz = rng.uniform(-0.3, 0.3, 3)
    label = (((z - tz) / 0.3) ** 2 + ((y - ty) / 0.2) ** 2 + ((x - tx) / 0.2) ** 2 <= 1.0) * 2.0
    vol = np.concatenate([img, label[None].astype(np.float32)], axis=0)  # 5 x Z x H x W
    return np.ascontiguousarray(vol.transpose(1, 0, 2, 3))


def write_store(path: Path, n: int, size: int, seed: int, prefix: str,
                planted_from: Path | None = None, planted: int = 0, per_subject: int = SLICES_PER_SUBJECT) -> None:
    """A float16 store of ``n`` slices, ``per_subject`` per subject (evenly spaced through a subject of
    :data:`SLICES_PER_SUBJECT`; ``planted`` of them mirrored copies of random rows of ``planted_from``)."""
    from synthgate.data.labels import BRATS2021
    from synthgate.data.store import StoreWriter, read_store

    if (path / "images.npy").exists():
        return  # reused (the planted copies are counted from the store's ids)
    rng = np.random.default_rng(seed)
    writer = StoreWriter(path, CHANNELS, "float16")
    made, s = 0, 0
    while made < n - planted:
        k = min(per_subject, n - planted - made)
        vol = subject_volume(rng, size, SLICES_PER_SUBJECT)[:: SLICES_PER_SUBJECT // per_subject][:k]  # same anatomy
        writer.append(vol, [f"{prefix}{s:05d}_z{z:03d}" for z in range(k)], f"{prefix}{s:05d}", range(k), "bench")
        made += k
        s += 1
    if planted:
        assert planted_from is not None
        src = read_store(planted_from)
        rows = np.sort(rng.choice(len(src), planted, replace=False))
        copies = src.read_rows(rows)[..., ::-1]
        writer.append(np.ascontiguousarray(copies), [f"copy{i:04d}" for i in range(planted)],
                      [f"copy{i:04d}" for i in range(planted)], range(planted), "planted")
    writer.close({"label_channel": 4, "label_map": BRATS2021.to_json()}, size)


def sgemm_seconds(nq: int, n_db: int, d: int, block: int = 1024) -> float:
    """Wall time of one numpy sgemm (nq x d) @ (d x n_db), computed in blocks of database rows."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((nq, d), dtype=np.float32)
    b = rng.standard_normal((block, d), dtype=np.float32)
    out = np.empty((nq, block), np.float32)
    t0 = time.perf_counter()
    for start in range(0, n_db, block):
        m = min(block, n_db - start)
        np.matmul(q, b[:m].T, out=out[:, :m])
    return time.perf_counter() - t0


_WRAP = """
import resource, sys
rss_file = sys.argv.pop(1)
from synthgate.cli import app
try:
    app(prog_name="synthgate")
finally:
    with open(rss_file, "w") as fh:
        fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
"""


def warm_page_cache(folder: Path) -> None:
    """Read every file of a store once, so that no run pays a cold disk read that the others do not (after other
    work evicts the stores, the first run read them from disk: its feature stage took 12 s instead of 7 s)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                while fh.read(1 << 24):
                    pass


def run_audit(args: list[str], workdir: Path) -> tuple[float, int, int]:
    """(wall seconds, exit code, peak RSS bytes of that process) of ``synthgate audit memorization ARGS``."""
    rss_file = workdir / "peak_rss"
    cmd = [sys.executable, "-c", _WRAP, str(rss_file), "audit", "memorization", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
    return wall, proc.returncode, int(rss_file.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--synthetic", type=int, default=1000)
    ap.add_argument("--holdout", type=int, default=500)
    ap.add_argument("--planted", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--transforms", nargs="+", default=["hflip", "robust"], choices=["hflip", "robust"])
    ap.add_argument("--scores", nargs="+", default=["all"], choices=["all", "pearson", "pearson,structure"])
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--max-memory", default="2G")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/audit_scale"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    wd = a.workdir / f"{a.size}px_{a.train}_{a.synthetic}_{a.holdout}"
    wd.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_store(wd / "train", a.train, a.size, 1, "tr")
    write_store(wd / "holdout", a.holdout, a.size, 2, "ho", per_subject=HOLDOUT_SLICES_PER_SUBJECT)
    write_store(wd / "synthetic", a.synthetic, a.size, 3, "sy", wd / "train", a.planted)
    write_store(wd / "tiny", 4, a.size, 4, "ti")
    gen = time.perf_counter() - t0
    from synthgate.cli.options import parse_size
    from synthgate.data.store import read_store

    planted = sum(1 for i in read_store(wd / "synthetic").ids if i.startswith("copy"))  # a reused store's count
    d = 4 * a.size * a.size
    nq = a.synthetic + a.holdout
    base = ["--train", str(wd / "train"), "--holdout", str(wd / "holdout"), "--backend", a.backend,
            "--max-memory", a.max_memory, "--device", "cpu", "--overwrite"]
    _w, _rc, constant = run_audit(["--synthetic", str(wd / "tiny"), "--train", str(wd / "tiny"), "--threshold",
                                   "0.99", "--out", str(wd / "out_tiny"), "--overwrite", "--device", "cpu"], wd)
    floor = sgemm_seconds(nq, 2 * a.train, d)
    floors = [floor]  # one before each audit and one after the last
    for store in ("train", "holdout", "synthetic"):
        warm_page_cache(wd / store)
    budget = parse_size(a.max_memory)
    report: dict[str, object] = {
        "shape": {"queries": nq, "train": a.train, "db_with_mirrors": 2 * a.train, "d": d, "size": a.size},
        "store_generation_s": round(gen, 1), "sgemm_s": round(floor, 2),
        "sgemm_gflops": round(2 * nq * 2 * a.train * d / floor / 1e9, 1),
        "interpreter_rss_mb": round(constant / 2**20), "max_memory": a.max_memory,
        "load_average": os.getloadavg()[0], "runs": {},
    }
    for t, scores in ((t, sc) for t in a.transforms for sc in a.scores):
        name = t if scores == "all" else f"{t}/{scores}"
        out = wd / f"out_{t}_{scores.replace(',', '_')}"
        flags = (["--transforms", "hflip"] if t == "hflip" else []) + ([] if scores == "all" else ["--scores", scores])
        wall, rc, peak = run_audit([*base, *flags, "--synthetic", str(wd / "synthetic"), "--out", str(out)], wd)
        floors.append(sgemm_seconds(nq, 2 * a.train, d))
        around = (floors[-2] + floors[-1]) / 2
        summary = json.loads((out / "summary.json").read_text()) if rc == 0 else {}
        flagged_planted = 0
        if rc == 0:
            import csv

            with (out / "matches.csv").open() as fh:
                flagged_planted = sum(1 for r in csv.DictReader(fh) if r["synthetic_id"].startswith("copy")
                                      and r["flagged"] == "true")
        counts = summary.get("counts", {})
        report["runs"][name] = {  # type: ignore[index]
            "exit": rc, "wall_s": round(wall, 1), "sgemm_around_s": round(around, 2),
            "ratio_to_sgemm": round(wall / around, 2),
            "peak_rss_mb": round(peak / 2**20), "rss_within_budget": peak <= budget + constant,
            "fallbacks": counts.get("exhaustive_fallbacks"),
            "pairs_scored_exactly": counts.get("pairs_scored_exactly"),
            "planted_flagged": f"{flagged_planted}/{planted}", "flagged": counts.get("flagged"),
            "calibration": summary.get("calibration", {}).get("method"),
            "stages_s": summary.get("seconds"), "feature_cache": summary.get("settings", {}).get("feature_cache"),
        }
    report["sgemm_each_s"] = [round(f, 2) for f in floors]
    if a.json:
        print(json.dumps(report, indent=2))
        return
    print(f"queries {nq} x training {a.train} (+ mirrors) at 4x{a.size}x{a.size} (d = {d}), float16 stores; "
          f"load average {report['load_average']:.1f}")
    print(f"sgemm floor {floor:.1f} s ({report['sgemm_gflops']} GFLOP/s) at the start, "
          f"{min(floors):.1f}-{max(floors):.1f} s over the runs; interpreter constant "
          f"{report['interpreter_rss_mb']} MB; --max-memory {a.max_memory}")
    for t, r in report["runs"].items():  # type: ignore[attr-defined]
        print(f"[{t}] exit {r['exit']}  {r['wall_s']} s = {r['ratio_to_sgemm']}x sgemm ({r['sgemm_around_s']} s around "
              f"it)  peak RSS {r['peak_rss_mb']} MB "
              f"({'within' if r['rss_within_budget'] else 'OVER'} budget + constant)"
              f"  fallbacks {r['fallbacks']}  exact pairs {r['pairs_scored_exactly']}  planted flagged "
              f"{r['planted_flagged']}  cache {r['feature_cache']}  calibration {r['calibration']}")
        print(f"      stages: {r['stages_s']}")
    runs = report["runs"]
    for t in a.transforms:
        fewer = [sc for sc in ("pearson,structure", "pearson") if f"{t}/{sc}" in runs]  # type: ignore[operator]
        if t in runs and fewer:  # type: ignore[operator]
            walls = {sc: runs[f"{t}/{sc}"]["wall_s"] for sc in fewer}  # type: ignore[index]
            print(f"[{t}] added scores cost: " + ", ".join(
                f"+{runs[t]['wall_s'] / w - 1:.0%} over {sc} only" for sc, w in walls.items()))  # type: ignore[index]


if __name__ == "__main__":
    main()
