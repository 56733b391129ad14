"""Detection of planted copies of real slices, per kind, and false positives on an unseen subject.

Usage (after ``synthgate data ingest COHORT --out DIR --size 128``; DIR holds train/holdout/test stores):

    python benchmarks/audit_planted.py DIR [--per-kind 10] [--kinds rotate20,half] [--seed 0] [--out /tmp/ap]

Synthetic set = every slice of the test subject(s) (unseen: must not be flagged) + ``--per-kind`` transformed
copies of random training slices for each :class:`~synthgate.audit.planted.CopyKind` (must be flagged). The
audit runs once on the whole set, calibrated on the holdout as the CLI does. Per kind it prints:

* AUC: the audit's best score of the copies against that of the unseen subject's slices (1 = every copy scores
  above every unseen slice), sklearn's ``roc_auc_score``;
* flagged: the fraction flagged at the tool's own (calibrated) threshold;
* right source: the fraction of flagged copies whose named training slice (the row of the first score that
  flagged it, whose subject the audit counts as leaked) is of the patient the copy was made from, or, for a
  blend or partial copy, of the patient of its second image (also a training slice);

then the false-positive rate on the unseen subject and the audit's wall time. Issue 10's targets: AUC >= 0.98
and >= 95 % flagged for every kind, <= 1 % of unseen slices flagged. Measured, not asserted.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit
from synthgate.audit.planted import PARTNER_KINDS, CopyKind, copy_partners, plant_copies
from synthgate.audit.report import write_audit_outputs
from synthgate.data.readers import load_set

TARGET_AUC, TARGET_FLAGGED, TARGET_FPR = 0.98, 0.95, 0.01


def parse_kinds(text: str) -> list[CopyKind]:
    """``"all"`` or a comma list of :class:`CopyKind` names."""
    if text == "all":
        return list(CopyKind)
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in set(CopyKind)]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(bad) or 'nothing'}: give 'all' or names from "
                                         f"{', '.join(CopyKind)}")
    return [CopyKind(n) for n in dict.fromkeys(names)]


def main() -> None:
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ingested", type=Path)
    ap.add_argument("--per-kind", type=int, default=10)
    ap.add_argument("--kinds", type=parse_kinds, default=list(CopyKind), help="'all' or a comma list of kinds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="also write the audit's outputs here")
    ap.add_argument("--write-synthetic", type=Path, default=None,
                    help="also write the synthetic set as a slice store (to run the CLI on it)")
    args = ap.parse_args()
    train = load_set(args.ingested / "train")
    holdout = load_set(args.ingested / "holdout")
    test = load_set(args.ingested / "test")
    copies, src_rows = plant_copies(train, args.per_kind, kinds=args.kinds, seed=args.seed)
    partner_rows = copy_partners(train, args.per_kind, kinds=args.kinds, seed=args.seed)
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
    result = run_memorization_audit(train, synthetic, holdout, MemorizationConfig(seed=args.seed, device=args.device))
    elapsed = time.perf_counter() - t0
    s = result.synthetic
    # the statistic the scores vote with (largest standardised score), so the AUC ranks what the flag uses
    stat = result.statistic if result.statistic is not None else s.score
    score = np.where(s.valid, np.nan_to_num(stat, nan=-np.inf), -np.inf)
    n_un = len(unseen)
    print(f"train {len(train)} slices of {len(train.subject_ids)} subjects; holdout {len(holdout)} slices of "
          f"{len(holdout.subject_ids)}; unseen test {n_un} slices of {len(test.subject_ids)}; "
          f"{train.shape[1]} px, channels {','.join(train.channels)}")
    cal = result.calibration
    print(f"audit of {len(synthetic)} synthetic images ({len(copies)} copies): {elapsed:.1f} s on {args.device}; "
          f"threshold {cal.threshold:.4f} ({cal.method}, q={cal.quantile}, n_null={cal.n_null})")
    fp = int(result.flagged[:n_un].sum())
    print(f"unseen subject: {fp}/{n_un} flagged, false-positive rate {fp / max(n_un, 1):.4f} "
          f"(target <= {TARGET_FPR}); its statistic: max {np.max(score[:n_un]):.4f}, "
          f"median {np.median(score[:n_un]):.4f}")
    print(f"{'kind':<12} {'AUC':>6} {'flagged':>8} {'right src':>9} {'stat':>7} {'':>4}  transforms found")
    names = s.transforms
    kinds = list(dict.fromkeys(copies.sources or ()))
    short = []
    for kind in kinds:
        idx = np.array([n_un + i for i, src in enumerate(copies.sources or ()) if src == kind])
        labels = np.r_[np.zeros(n_un), np.ones(len(idx))]
        auc = float(roc_auc_score(labels, np.r_[score[:n_un], score[idx]]))
        flagged = float(result.flagged[idx].mean())
        named = result.source_row if result.source_row is not None else s.train_row
        sources = [[int(src_rows[i - n_un])] + ([int(partner_rows[i - n_un])] if kind in PARTNER_KINDS else [])
                   for i in idx]
        right = np.mean([named[i] >= 0 and train.subjects[int(named[i])] in {train.subjects[r] for r in rows}
                         for i, rows in zip(idx, sources, strict=True) if result.flagged[i]] or [0.0])
        ok = auc >= TARGET_AUC and flagged >= TARGET_FLAGGED
        if not ok:
            short.append(kind)
        found = sorted({names[i] for i in idx})
        print(f"{kind:<12} {auc:>6.3f} {flagged:>8.0%} {right:>9.0%} {np.mean(score[idx]):>7.4f} "
              f"{'ok' if ok else 'SHORT':>5}  {','.join(found)}")
    fpr_met = fp / max(n_un, 1) <= TARGET_FPR
    print(f"kinds short of the targets (AUC >= {TARGET_AUC}, >= {TARGET_FLAGGED:.0%} flagged): "
          f"{', '.join(short) or 'none'}; false-positive target {'met' if fpr_met else 'MISSED'}")
    print(f"stages (s): {', '.join(f'{k} {v:.1f}' for k, v in result.seconds.items())}")
    if args.out is not None:
        write_audit_outputs(result, args.out, train, synthetic, overwrite=True)
        print(f"outputs: {args.out}")


if __name__ == "__main__":
    main()
