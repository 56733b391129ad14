"""Detection rate of planted copies on real slices, per transform, and false positives on an unseen subject.

Usage (after ``synthgate data ingest COHORT --out DIR``; DIR holds train/holdout/test stores):

    python benchmarks/audit_planted.py DIR [--per-kind 10] [--seed 0] [--out /tmp/audit_planted]

Synthetic set = every slice of the test subject(s) (unseen: must not be flagged) + ``per-kind`` transformed
copies of random training slices for each :class:`~synthgate.audit.planted.CopyKind` (must be flagged).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit
from synthgate.audit.planted import CopyKind, plant_copies
from synthgate.audit.report import write_audit_outputs
from synthgate.data.readers import load_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ingested", type=Path)
    ap.add_argument("--per-kind", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--write-synthetic", type=Path, default=None,
                    help="also write the synthetic set as a slice store (to run the CLI on it)")
    args = ap.parse_args()
    train = load_set(args.ingested / "train")
    holdout = load_set(args.ingested / "holdout")
    test = load_set(args.ingested / "test")
    copies, src_rows = plant_copies(train, args.per_kind, seed=args.seed)
    unseen = test.subset(range(len(test)))
    synthetic = replace(
        unseen,
        images=np.concatenate([unseen.images, copies.images]),
        ids=unseen.ids + copies.ids,
        subjects=unseen.subjects + copies.subjects,
        slice_index=None, seeds=None,
        sources=("unseen",) * len(unseen) + tuple(copies.sources or ()),
    )
    if args.write_synthetic is not None:
        from synthgate.data.store import write_store

        write_store(synthetic, args.write_synthetic, overwrite=True)
    t0 = time.perf_counter()
    result = run_memorization_audit(train, synthetic, holdout, MemorizationConfig(seed=args.seed))
    elapsed = time.perf_counter() - t0
    s = result.synthetic
    print(f"train {len(train)} images / {len(train.subject_ids)} subjects {train.subject_ids}")
    print(f"holdout {len(holdout)} images {holdout.subject_ids}; unseen test {len(test)} images {test.subject_ids}")
    print(f"audit of {len(synthetic)} synthetic images: {elapsed:.1f} s (2 shared CPU cores)")
    cal = result.calibration
    print(f"threshold {cal.threshold:.4f} ({cal.method}, q={cal.quantile}, n_null={cal.n_null}, "
          f"expected FPR {cal.expected_false_positive_rate:.4f})")
    n_un = len(unseen)
    fp = int(result.flagged[:n_un].sum())
    print(f"unseen subject: {fp}/{n_un} flagged (false positives); best score max {np.nanmax(s.score[:n_un]):.4f}")
    print(f"{'kind':<10} {'detected':>9} {'right src':>9} {'pixel r':>8} {'score':>8}  transforms found")
    names = s.transforms
    for kind in CopyKind:
        idx = [n_un + i for i, src in enumerate(copies.sources or ()) if src == kind]
        det = result.flagged[idx]
        right = np.array([train.subjects[int(s.train_row[i])] == train.subjects[int(src_rows[i - n_un])]
                          for i in idx])
        found = sorted({names[i] for i in idx})
        print(f"{kind!s:<10} {det.sum():>4}/{len(idx):<4} {right.sum():>4}/{len(idx):<4} "
              f"{np.mean(s.pixel_score[idx]):>8.4f} {np.mean(s.score[idx]):>8.4f}  {','.join(found)}")
    print(f"test: {result.test.interpretation}")
    print(f"subjects leaked: {len(result.leaked_subjects)}/{len(result.train_subjects)}")
    if args.out is not None:
        write_audit_outputs(result, args.out, train, synthetic, overwrite=True)
        print(f"outputs: {args.out}")


if __name__ == "__main__":
    main()
