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
from synthgate.audit.calibration import MIN_HOLDOUT_SUBJECTS, SUBJECT_CONFIDENCE, CalibrationMethod, describe
from synthgate.audit.figures import DIFF_RANGE, histogram_png, pair_pngs, stack_png
from synthgate.audit.memorization import MemorizationResult
from synthgate.data.imageset import ImageSet
from synthgate.data.manifest import binding_json
from synthgate.data.subjects import SubjectSource, subject_source
from synthgate.runtime import png_data_uri

MATCHES_COLUMNS = (
    "synthetic_id", "train_id", "train_subject", "score", "flagged", "transform",
    "pixel_score", "pixel_train_id", "angle_deg", "scale", "shift_y", "shift_x",
    "flagged_by", "structure_score", "structure_train_id", "partial_score", "partial_train_id",
)
PLOTS = ("scores.png", "top_pairs.png")
PER_IMAGE_NOTE = ("the training set is a folder of images without subjects, so each image counts as its own "
                  "subject; audit again with --subjects FILE.csv or --subject-pattern REGEX to count patients")


def summary_json(result: MemorizationResult, train: ImageSet | None = None) -> dict[str, Any]:
    """The content of summary.json (docs/contracts.md); ``train`` says where the training subjects came from."""
    cal = result.calibration
    total = len(result.train_subjects)
    source = subject_source(train) if train is not None else SubjectSource.SET
    return {
        "synthgate_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "counts": result.counts,
        "fraction_flagged": result.fraction_flagged,
        "threshold": cal.threshold,
        "calibration": cal.to_json() | {"null": result.null_name, "note": calibration_note(result)},
        "scores": {name: c.to_json() | {"threshold": c.threshold, "flagged": _count(result, name)}
                   for name, c in result.calibrations.items()},
        "subjects_leaked": {
            "count": len(result.leaked_subjects),
            "fraction": len(result.leaked_subjects) / total if total else 0.0,
            "total": total,
            "subjects_from": str(source),
            "per_image": source is SubjectSource.PER_IMAGE,
            "note": _subjects_note(result, source),
        },
        "distributions": {
            "synthetic_to_train": describe(result.synthetic.score),
            "holdout_to_train": describe(result.compared_scores),
        },
        "test": result.test.to_json(),
        "transforms_flagged": _transform_counts(result),
        "settings": result.settings,
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "versions": result.versions,
    }


def _count(result: MemorizationResult, score: str) -> int:
    """Synthetic images at or above the threshold of ``score``."""
    return sum(score in by.split("+") for by in result.flagged_by)


def _subjects_note(result: MemorizationResult, source: SubjectSource) -> str:
    if source is not SubjectSource.PER_IMAGE:
        return ""
    if result.calibration.method == "train-subject-disjoint":
        return PER_IMAGE_NOTE + ("; without --holdout the null then pairs slices of one patient, which raises the "
                                 "threshold and hides copies")
    return PER_IMAGE_NOTE


def calibration_note(result: MemorizationResult) -> str:
    """A plain-language caveat on the calibration (empty when there is none)."""
    cal = result.calibration
    n_sub = len(result.train_subjects)
    if cal.method == "train-subject-disjoint":
        return (f"no holdout: each training image was scored against the other {n_sub - 1} training subjects, "
                f"while synthetic images meet all {n_sub}; with few subjects this null is biased low and the "
                "false-positive rate is higher than stated; audit again with --holdout")
    notes = []
    if cal.n_null and cal.quantile is not None and cal.n_null + 1 < 1 / (1 - cal.quantile):
        notes.append(f"{cal.n_null} null scores are too few for quantile {cal.quantile}: the threshold is the null "
                     "maximum; a larger holdout gives a sharper threshold")
    held = result.counts.get("holdout_subjects", 0)
    if cal.method == CalibrationMethod.HOLDOUT_AND_TRAIN:
        notes.append(f"the holdout holds {held} subject{'s' if held > 1 else ''}, fewer than {MIN_HOLDOUT_SUBJECTS}: "
                     f"training subjects, each scored against the others, joined the null, and the threshold "
                     f"is at least a bound, from the spread between the {cal.null_subjects} subjects, that a new "
                     f"patient stays under {SUBJECT_CONFIDENCE:.0%} of the time; a holdout of at least "
                     f"{MIN_HOLDOUT_SUBJECTS} subjects calibrates on unseen patients alone")
    elif cal.method == CalibrationMethod.HOLDOUT_QUANTILE and 0 < held < MIN_HOLDOUT_SUBJECTS:
        # slices of one patient are not exchangeable with another's: patients differ in how alike they are to the
        # training set (measured in synthgate.audit.calibration's docstring)
        notes.append(f"the holdout holds {held} subject{'s' if held > 1 else ''}: the expected false-positive rate "
                     f"holds for patients like {'them' if held > 1 else 'it'}, and another patient may be flagged "
                     f"more often; a holdout of at least {MIN_HOLDOUT_SUBJECTS} subjects calibrates for the spread "
                     "between patients" + ("" if result.config.pool_null else
                                           ", and without --holdout-only training subjects join the null"))
    return "; ".join(notes)


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
            f"{s.angle_deg[i]:.2f}", f"{s.scale[i]:.4f}", f"{s.shift_y[i]:.1f}", f"{s.shift_x[i]:.1f}",
            result.flagged_by[i] if result.flagged_by else "",
            *_extra(s.structure[i], s.structure_row[i], train), *_extra(s.partial[i], s.partial_row[i], train),
        ])
    return rows


def _extra(score: float, row: int, train: ImageSet) -> list[str]:
    """(score, training id) columns of an extra score, empty where it was not computed."""
    return [f"{score:.6f}", train.ids[int(row)]] if np.isfinite(score) and row >= 0 else ["", ""]


def write_audit_outputs(
    result: MemorizationResult, out_dir: str | os.PathLike[str], train: ImageSet, synthetic: ImageSet,
    overwrite: bool = False, holdout: ImageSet | None = None,
) -> Path:
    """Write matches.csv, summary.json, report.html and the plots into ``out_dir`` (atomically).

    summary.json's ``binding`` holds the content hashes of the synthetic, training and holdout images, so that
    ``release build`` can check it gates exactly the audited images (:mod:`synthgate.data.manifest`).

    Raises:
        UsageError: ``out_dir`` exists and ``overwrite`` is false.
    """
    summary = summary_json(result, train)
    summary["binding"] = binding_json({"synthetic": synthetic, "train": train, "holdout": holdout})
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        with (tmp / "matches.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(MATCHES_COLUMNS)
            w.writerows(matches_rows(result, train, synthetic))
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        hist = histogram_png(result)
        pairs = pair_pngs(result, train, synthetic)
        (tmp / PLOTS[0]).write_bytes(hist)
        (tmp / PLOTS[1]).write_bytes(stack_png([b for _, b in pairs]))
        (tmp / "report.html").write_text(_html(result, summary, train, synthetic, hist, pairs), encoding="utf-8")
    return Path(out_dir)


def _pair_html(result: MemorizationResult, train: ImageSet, synthetic: ImageSet, i: int, png: bytes) -> str:
    """One pair with its full ids (wrapped, never cut), score, flag and transform above the grid."""
    s, esc = result.synthetic, html.escape
    r = int(s.train_row[i])
    flag = "FLAGGED" if result.flagged[i] else "not flagged"
    return (f'<figure class="pair"><figcaption><b>{flag}</b>, score {s.score[i]:.4f} '
            f"({esc(s.transforms[i])}: {'mirrored, ' if s.flip[i] else ''}angle {s.angle_deg[i]:g} deg, "
            f"scale {s.scale[i]:g}, shift {s.shift_y[i]:.1f}, {s.shift_x[i]:.1f} px)<br>"
            f"synthetic <span class=\"id\">{esc(synthetic.ids[i])}</span><br>"
            f"training <span class=\"id\">{esc(train.ids[r])}</span> of subject "
            f"<span class=\"id\">{esc(train.subjects[r])}</span></figcaption>"
            f'<img alt="pair" src="{png_data_uri(png)}"></figure>')


def _html(result: MemorizationResult, summary: dict[str, Any], train: ImageSet, synthetic: ImageSet,
          hist: bytes, pairs: list[tuple[int, bytes]]) -> str:
    def img(b: bytes) -> str:
        return f'<img alt="plot" src="{png_data_uri(b)}">'

    cal = result.calibration
    esc = html.escape
    figures = "".join(_pair_html(result, train, synthetic, i, b) for i, b in pairs) or "<p>No valid pair.</p>"
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
padding:2px 6px;overflow-wrap:anywhere}} img{{max-width:100%}} .id{{font-family:monospace;overflow-wrap:anywhere}}
figure.pair{{margin:1.2em 0;border-top:1px solid #ddd;padding-top:.6em}}</style></head><body>
<div class="private">PRIVATE: this report shows training images. Do not share it; it never goes into a release.</div>
<h1>Memorization audit</h1>
<p>{result.counts['flagged']} of {result.counts['synthetic']} synthetic images flagged
({100 * result.fraction_flagged:.2f} %); {leaked['count']} of {leaked['total']} training subjects have at least
one flagged copy{esc(' (' + leaked['note'] + ')') if leaked['note'] else ''}. Zero-variance synthetic images
(not comparable): {result.counts['zero_variance']}.</p>
<p>Threshold {cal.threshold:.6f} ({esc(str(cal.method))}{'' if cal.quantile is None else f', quantile {cal.quantile}'},
{cal.n_null} null scores from {esc(result.null_name)}); expected false-positive rate per image:
{'n/a' if cal.expected_false_positive_rate is None else f'{cal.expected_false_positive_rate:.4f}'}.</p>
<p>{esc(summary['calibration']['note'])}</p>
<p>Test: {esc(result.test.interpretation)}.</p>
<h2>Scores</h2>{img(hist)}
<h2>Top pairs</h2>
<p>Each synthetic image (top row), its nearest training image moved onto it by the matched transform (mirror,
rotation, zoom, shift; middle row), and the absolute difference of the standardised channels after that
alignment (bottom row, black = equal, full colour = {DIFF_RANGE:g} standard deviations or more; for the label,
the pixels whose values differ). Every channel is shown.</p>
{figures}
<h2>Matches</h2><table><tr>{head}</tr>{table}</table>
<p>synthgate {esc(__version__)}</p></body></html>
"""
