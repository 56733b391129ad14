"""Throughput and memory of the memorization audit's exact search (measured, not asserted).

    python benchmarks/audit_throughput.py [--train 20000] [--synthetic 5000] [--shape 5,64,64] [--k 5]
    python benchmarks/audit_throughput.py --memory [--train 3000] [--max-memory 256M]

Search mode prints, in one run on the same data (training images + their mirrors = the index):
numpy sgemm of the same shape (GFLOP/s); the audit's exact search with each backend (in the mirror basis, as the
audit runs it: half the sgemm's work; effective GFLOP/s of the full shape, ratio to sgemm);
faiss IndexFlatIP over the whole index; the bf16 candidate search + exact float64 re-rank, its speed-up over faiss,
and whether its neighbours (hence its flags) equal the fp32 exact search's.
Memory mode writes a training store larger than --max-memory to a temporary folder, runs
``synthgate audit memorization`` under ``/usr/bin/time -v`` and prints its peak RSS next to the budget and to the
peak RSS of the same command on a tiny store (the interpreter + torch + faiss constant).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from synthgate.audit.backend import Backend
from synthgate.audit.basis import sym_columns, to_mirror_basis
from synthgate.audit.features import hflip, pearson_features
from synthgate.audit.search import DbBlock, search_topk
from synthgate.cli.options import parse_size
from synthgate.data.imageset import ImageSet
from synthgate.data.store import write_store


def smooth_images(n: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """n x C x H x W smooth random images on a dark background (low-resolution noise, upsampled)."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    low = rng.random((n, c, h // 8, w // 8), dtype=np.float32)
    x = low.repeat(8, axis=2).repeat(8, axis=3)
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.36 * w)) ** 2 <= 1
    x *= mask
    x += 0.05 * rng.random(x.shape, dtype=np.float32)
    return x


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def search_benchmark(args: argparse.Namespace) -> None:
    import faiss

    shape = tuple(int(v) for v in args.shape.split(","))
    c, h, w = shape
    train = smooth_images(args.train, shape, 0)
    syn = smooth_images(args.synthetic, shape, 1)
    syn[: args.synthetic // 10] = train[: args.synthetic // 10] * 1.1 + 0.01  # some copies: dense top scores
    ch = tuple(range(c))
    tf = pearson_features(train, ch).vectors
    tff = pearson_features(hflip(train), ch).vectors
    del train
    db = np.stack([tf, tff], axis=1).reshape(2 * args.train, -1)
    del tf, tff
    q = pearson_features(syn, ch).vectors
    del syn
    nq, d = q.shape
    nd = len(db)
    flop = 2.0 * nq * nd * d
    block = args.block

    def database() -> Iterator[DbBlock]:
        for s in range(0, nd, block):
            yield DbBlock(s, db[s : s + block])

    # the audit passes random access to the rows (its feature cache): exact scores are gathered at the pass's end

    print(f"shape: {nq} synthetic x {nd} index entries ({args.train} training images + mirrors) x d={d} "
          f"({c}x{h}x{w}); block {block}; k={args.k}; {faiss.omp_get_max_threads()} threads")
    t_np, _ = timed(lambda: q @ db.T, args.repeat)
    print(f"numpy sgemm                 {t_np:8.2f} s  {flop / t_np / 1e9:7.1f} GFLOP/s")
    t_fx, (_fs, fi) = timed(lambda: _faiss_flat(q, db, args.k), args.repeat)  # type: ignore[misc]
    print(f"faiss IndexFlatIP (fp32)    {t_fx:8.2f} s  {flop / t_fx / 1e9:7.1f} GFLOP/s  "
          f"ratio to sgemm {t_np / t_fx:.2f}")
    # the audit's search: training features in the mirror basis (N rows), each row and its mirror as entries
    # 2 j and 2 j + 1 (the numbering of ``db`` above), two half-width GEMMs per block
    bq = to_mirror_basis(q, shape).numpy()
    bdb = to_mirror_basis(db[0::2], shape).numpy()

    def basis_database() -> Iterator[DbBlock]:
        for s in range(0, len(bdb), block // 2):
            yield DbBlock(s, bdb[s : s + block // 2])

    results = {}
    for backend in (Backend.FAISS, Backend.TORCH, Backend.BF16):
        t, top = timed(lambda b=backend: search_topk(bq, basis_database, args.k, b, rows=lambda r: bdb[r],  # type: ignore[misc]
                                                     mirror_at=sym_columns(shape)), args.repeat)
        results[backend] = top
        print(f"audit search {backend!s:<14} {t:8.2f} s  {flop / t / 1e9:7.1f} GFLOP/s  ratio to sgemm "
              f"{t_np / t:.2f}  speed-up over faiss flat {t_fx / t:.2f}x  exhaustive fallbacks {top.n_fallback}")
    ref = results[Backend.FAISS]
    for backend, top in results.items():
        same = np.array_equal(top.indices, ref.indices) and np.array_equal(top.scores, ref.scores)
        print(f"  {backend!s:<6} neighbours and scores identical to the faiss-backend exact search: {same}")
    agree = float(np.mean(fi[:, 0] == ref.indices[:, 0]))
    print(f"  raw faiss top-1 agreement with the exact search: {agree:.4f} (differences = ties / fp32 rounding)")


def _faiss_flat(q: np.ndarray, db: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    return index.search(q, k)


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    t = time.perf_counter()
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {res.stderr[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
    assert m, res.stderr
    return int(m.group(1)) / 1024, wall


def memory_benchmark(args: argparse.Namespace) -> None:
    shape = tuple(int(v) for v in args.shape.split(","))
    budget = parse_size(args.max_memory)
    exe = str(Path(sys.executable).with_name("synthgate"))
    with tempfile.TemporaryDirectory(prefix="audit_mem_") as tmp:
        root = Path(tmp)

        def store(name: str, n: int, seed: int) -> Path:
            images = smooth_images(n, shape, seed)
            s = ImageSet(images=images, ids=tuple(f"{name}{i}" for i in range(n)),
                         subjects=tuple(f"{name}s{i // 50}" for i in range(n)),
                         channels=tuple(f"c{i}" for i in range(shape[0])))
            return write_store(s, root / name)

        big = store("train", args.train, 0)
        tiny = store("tiny", 64, 2)
        hold = store("hold", 64, 3)
        syn = store("syn", args.synthetic, 1)
        size_mb = (big / "images.npy").stat().st_size / 2**20
        common = ["--synthetic", str(syn), "--holdout", str(hold), "--transforms", "hflip",
                  "--max-memory", args.max_memory]
        base, _ = peak_rss_mb([exe, "audit", "memorization", "--train", str(tiny), "--out", str(root / "o1"),
                               *common])
        peak, wall = peak_rss_mb([exe, "audit", "memorization", "--train", str(big), "--out", str(root / "o2"),
                                  *common])
    print(f"training store {size_mb:.0f} MB ({args.train} x {shape}), {args.synthetic} synthetic, "
          f"--max-memory {budget / 2**20:.0f} MB")
    print(f"peak RSS, tiny training store (constant: interpreter, torch, faiss): {base:7.0f} MB")
    print(f"peak RSS, large training store:                                   {peak:7.0f} MB  ({wall:.1f} s)")
    print(f"peak RSS - constant = {peak - base:.0f} MB vs budget {budget / 2**20:.0f} MB "
          f"({'within' if peak - base <= budget / 2**20 else 'OVER'} budget)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--synthetic", type=int, default=5000)
    ap.add_argument("--shape", default="5,64,64")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--block", type=int, default=4096, help="index entries per block (search mode)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--memory", action="store_true", help="measure peak RSS against --max-memory instead")
    ap.add_argument("--max-memory", default="256M")
    args = ap.parse_args()
    if args.memory:
        memory_benchmark(args)
    else:
        search_benchmark(args)


if __name__ == "__main__":
    main()
