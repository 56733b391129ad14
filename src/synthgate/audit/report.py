"""Writing the memorization audit's outputs (docs/contracts.md): matches.csv, summary.json, report.html + plots.

``report.html`` is PRIVATE evidence: it shows training images. It is self-contained (plots inlined as PNG data
URIs) and opens offline. It never goes into a release bundle.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthgate import __version__
from synthgate.atomic import atomic_dir
from synthgate.audit.calibration import describe
from synthgate.audit.memorization import MemorizationResult
from synthgate.data.imageset import ImageSet
from synthgate.runtime import figure_png, png_data_uri, pyplot

MATCHES_COLUMNS = (
    "synthetic_id", "train_id", "train_subject", "score", "flagged", "transform",
    "pixel_score", "pixel_train_id", "angle_deg", "scale", "shift_y", "shift_x",
)
PLOTS = ("scores.png", "top_pairs.png")
MAX_PAIRS = 12


def summary_json(result: MemorizationResult) -> dict[str, Any]:
    """The content of summary.json (docs/contracts.md)."""
    cal = result.calibration
    total = len(result.train_subjects)
    return {
        "synthgate_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "counts": result.counts,
        "fraction_flagged": result.fraction_flagged,
        "threshold": cal.threshold,
        "calibration": cal.to_json() | {"null": result.null_name, "note": calibration_note(result)},
        "subjects_leaked": {
            "count": len(result.leaked_subjects),
            "fraction": len(result.leaked_subjects) / total if total else 0.0,
            "total": total,
        },
        "distributions": {
            "synthetic_to_train": describe(result.synthetic.score),
            "holdout_to_train": describe(result.null.score),
        },
        "test": result.test.to_json(),
        "transforms_flagged": _transform_counts(result),
        "settings": result.settings,
        "versions": result.versions,
    }


def calibration_note(result: MemorizationResult) -> str:
    """A plain-language caveat on the calibration (empty when there is none)."""
    cal = result.calibration
    n_sub = len(result.train_subjects)
    if cal.method == "train-subject-disjoint":
        return (f"no holdout: each training image was scored against the other {n_sub - 1} training subjects, "
                f"while synthetic images meet all {n_sub}; with few subjects this null is biased low and the "
                "false-positive rate is higher than stated; audit again with --holdout")
    if cal.n_null and cal.quantile is not None and cal.n_null + 1 < 1 / (1 - cal.quantile):
        return (f"{cal.n_null} null scores are too few for quantile {cal.quantile}: the threshold is the null "
                "maximum; a larger holdout gives a sharper threshold")
    return ""


def _transform_counts(result: MemorizationResult) -> dict[str, int]:
    names = np.array(result.synthetic.transforms, dtype=object)
    out: dict[str, int] = {}
    for t in names[result.flagged]:
        out[str(t)] = out.get(str(t), 0) + 1
    return dict(sorted(out.items()))


def matches_rows(result: MemorizationResult, train: ImageSet, synthetic: ImageSet) -> list[list[str]]:
    """One row per synthetic image, columns :data:`MATCHES_COLUMNS`."""
    s = result.synthetic
    rows = []
    for i, t in enumerate(s.transforms):
        ok = bool(s.valid[i]) and s.train_row[i] >= 0
        r, p = int(s.train_row[i]), int(s.pixel_row[i])
        rows.append([
            synthetic.ids[i],
            train.ids[r] if ok else "",
            train.subjects[r] if ok else "",
            f"{s.score[i]:.6f}" if ok else "",
            "true" if result.flagged[i] else "false",
            t,
            f"{s.pixel_score[i]:.6f}" if ok else "",
            train.ids[p] if ok else "",
            f"{s.angle_deg[i]:g}", f"{s.scale[i]:g}", f"{s.shift_y[i]:.1f}", f"{s.shift_x[i]:.1f}",
        ])
    return rows


def write_audit_outputs(
    result: MemorizationResult, out_dir: str | os.PathLike[str], train: ImageSet, synthetic: ImageSet,
    overwrite: bool = False,
) -> Path:
    """Write matches.csv, summary.json, report.html and the plots into ``out_dir`` (atomically).

    Raises:
        UsageError: ``out_dir`` exists and ``overwrite`` is false.
    """
    summary = summary_json(result)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        with (tmp / "matches.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(MATCHES_COLUMNS)
            w.writerows(matches_rows(result, train, synthetic))
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        hist = _histogram_png(result)
        pairs = _pairs_png(result, train, synthetic)
        (tmp / PLOTS[0]).write_bytes(hist)
        (tmp / PLOTS[1]).write_bytes(pairs)
        (tmp / "report.html").write_text(_html(result, summary, train, synthetic, hist, pairs), encoding="utf-8")
    return Path(out_dir)


def _png(fig: Any) -> bytes:
    return figure_png(fig, dpi=110, bbox_inches="tight")


def _histogram_png(result: MemorizationResult) -> bytes:
    plt = pyplot()

    syn = result.synthetic.score[np.isfinite(result.synthetic.score)]
    null = result.null.score[np.isfinite(result.null.score)]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    lo = min([result.calibration.threshold, *syn, *null]) - 0.01
    bins = np.linspace(lo, 1.0, 50).tolist()
    ax.hist(null, bins=bins, alpha=0.6, density=True, label=f"{result.null_name} -> train (n={len(null)})")
    ax.hist(syn, bins=bins, alpha=0.6, density=True, label=f"synthetic -> train (n={len(syn)})")
    ax.axvline(result.calibration.threshold, color="k", ls="--", label=f"threshold {result.calibration.threshold:.4f}")
    ax.set_xlabel("best-match score (channel-mean Pearson r)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return _png(fig)


def _top_pairs(result: MemorizationResult) -> np.ndarray:
    """Flagged pairs to show: the best of each transform in turn (round robin), then unflagged best scores."""
    s = result.synthetic
    score = np.where(s.valid, np.nan_to_num(s.score, nan=-np.inf), -np.inf)
    order = [int(i) for i in np.argsort(-score, kind="stable")]
    flagged = [i for i in order if result.flagged[i]]
    if not flagged:
        return np.array([i for i in order if np.isfinite(score[i])][:MAX_PAIRS], dtype=np.int64)
    names = s.transforms
    queues: dict[str, list[int]] = {}
    for i in flagged:
        queues.setdefault(names[i], []).append(i)
    pick: list[int] = []
    while len(pick) < MAX_PAIRS and any(queues.values()):
        for q in queues.values():
            if q and len(pick) < MAX_PAIRS:
                pick.append(q.pop(0))
    return np.array(pick, dtype=np.int64)


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - float(x.mean())) / (sd if sd > 0 else 1.0)


def _pairs_png(result: MemorizationResult, train: ImageSet, synthetic: ImageSet) -> bytes:
    plt = pyplot()

    pick = _top_pairs(result)
    c = next(iter(train.image_channels), 0)
    n = max(1, len(pick))
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.2 * n), squeeze=False)
    if len(pick):
        syn = synthetic.read_rows(pick)[:, c]
        tr = train.read_rows(result.synthetic.train_row[pick])[:, c]
        tr = np.where(result.synthetic.flip[pick][:, None, None], tr[:, :, ::-1], tr)
    for r in range(n):
        for ax in axes[r]:
            ax.axis("off")
        if not len(pick):
            axes[r][0].text(0.5, 0.5, "no valid synthetic image", ha="center")
            continue
        i = int(pick[r])
        axes[r][0].imshow(syn[r], cmap="gray")
        axes[r][1].imshow(tr[r], cmap="gray")
        axes[r][2].imshow(np.abs(_z(syn[r]) - _z(tr[r])), cmap="magma")
        axes[r][0].set_title(f"{synthetic.ids[i][:24]} ({result.synthetic.transforms[i]})", fontsize=7)
        axes[r][1].set_title(f"{train.ids[int(result.synthetic.train_row[i])][:24]}", fontsize=7)
        axes[r][2].set_title(f"|diff| r={result.synthetic.score[i]:.3f}", fontsize=7)
    fig.suptitle(f"channel {train.channels[c]}; training image mirrored where matched so; |difference| of the "
                 "standardised images before alignment", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (2.2 * n)))
    return _png(fig)


def _html(result: MemorizationResult, summary: dict[str, Any], train: ImageSet, synthetic: ImageSet,
          hist: bytes, pairs: bytes) -> str:
    def img(b: bytes) -> str:
        return f'<img alt="plot" src="{png_data_uri(b)}">'

    cal = result.calibration
    esc = html.escape
    rows = matches_rows(result, train, synthetic)
    order = sorted(range(len(rows)), key=lambda i: (rows[i][4] != "true", -(float(rows[i][3] or "-inf"))))
    table = "".join(
        "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in rows[i]) + "</tr>" for i in order
    )
    head = "".join(f"<th>{esc(c)}</th>" for c in MATCHES_COLUMNS)
    leaked = summary["subjects_leaked"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>PRIVATE - synthgate memorization audit</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} .private{{background:#b00;color:#fff;
padding:.6em;font-weight:bold}} table{{border-collapse:collapse;font-size:12px}} td,th{{border:1px solid #ccc;
padding:2px 6px}} img{{max-width:100%}}</style></head><body>
<div class="private">PRIVATE: this report shows training images. Do not share it; it never goes into a release.</div>
<h1>Memorization audit</h1>
<p>{result.counts['flagged']} of {result.counts['synthetic']} synthetic images flagged
({100 * result.fraction_flagged:.2f} %); {leaked['count']} of {leaked['total']} training subjects have at least
one flagged copy. Zero-variance synthetic images (not comparable): {result.counts['zero_variance']}.</p>
<p>Threshold {cal.threshold:.6f} ({esc(str(cal.method))}{'' if cal.quantile is None else f', quantile {cal.quantile}'},
{cal.n_null} null scores from {esc(result.null_name)}); expected false-positive rate per image:
{'n/a' if cal.expected_false_positive_rate is None else f'{cal.expected_false_positive_rate:.4f}'}.</p>
<p>{esc(summary['calibration']['note'])}</p>
<p>Test: {esc(result.test.interpretation)}.</p>
<h2>Scores</h2>{img(hist)}
<h2>Top pairs (synthetic | nearest training image | difference)</h2>{img(pairs)}
<h2>Matches</h2><table><tr>{head}</tr>{table}</table>
<p>synthgate {esc(__version__)}</p></body></html>
"""
