"""Ingest throughput: subjects/s, slices/s and MB written/s, and peak RSS, on a phantom cohort.

Measured, not asserted. Usage:
    python benchmarks/ingest_throughput.py [--subjects 6] [--shape 240,240,155] [--size 256] [--cohort DIR]

With ``--cohort`` it ingests that folder instead (e.g. a real BraTS cohort).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from synthgate.data.ingest import IngestConfig, ingest_cohort
from synthgate.data.phantom import write_phantom_cohort


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--shape", default="240,240,155")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--cohort", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cohort = args.cohort
        if cohort is None:
            t0 = time.perf_counter()
            shape = tuple(int(v) for v in args.shape.split(","))
            cohort = write_phantom_cohort(Path(tmp) / "cohort", args.subjects, shape=shape)  # type: ignore[arg-type]
            print(f"phantom: {args.subjects} subjects of {args.shape} in {time.perf_counter() - t0:.1f} s")
        r = ingest_cohort(cohort, Path(tmp) / "stores", IngestConfig(size=args.size))
        n_subjects = sum(c["subjects"] for c in r.counts.values())
        n_images = sum(c["images"] for c in r.counts.values())
        print(f"ingest: {n_subjects} subjects, {n_images} slices at {args.size} px in {r.seconds:.2f} s")
        print(f"  {n_subjects / r.seconds:.2f} subjects/s, {n_images / r.seconds:.1f} slices/s, "
              f"{r.bytes_written / 1e6 / r.seconds:.1f} MB/s, {r.bytes_written / 1e6:.1f} MB written")
        print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
