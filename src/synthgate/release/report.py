"""The PUBLIC release report (``release_report.html`` and ``.json``): decision, checks and statistics only.

Nothing here shows an image; ids are opaque. The utility fragment of the utility stage is embedded only
when it names no private id (:func:`synthgate.release.privacy.find_private_strings`).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from synthgate import __version__
from synthgate.release.gate import GateDecision
from synthgate.release.inputs import AuditInputs, UtilityInputs
from synthgate.release.policy import ReleasePolicy
from synthgate.release.privacy import find_private_strings
from synthgate.runtime import figure_png, png_data_uri, pyplot

logger = logging.getLogger(__name__)


def _quantiles(dist: Mapping[str, Any]) -> dict[float, float]:
    out = {}
    for k, v in (dist.get("quantiles") or {}).items():
        try:
            q = float(str(k).lstrip("qp"))
            out[q / 100 if q > 1 else q] = float(v)
        except (TypeError, ValueError):
            continue
    return dict(sorted(out.items()))


def report_json(
    decision: GateDecision,
    audit: AuditInputs,
    utility: UtilityInputs | None,
    policy: ReleasePolicy,
) -> dict[str, Any]:
    """The machine-readable public report."""
    s = audit.summary
    scores = [m.score for m in audit.matches if m.score is not None]
    dists = s.get("distributions") or {}
    return {
        "synthgate_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **decision.to_json(),
        "memorization": {
            "threshold": s.get("threshold"),
            "calibration": s.get("calibration"),
            "fraction_flagged": s.get("fraction_flagged"),
            "subjects_leaked": {k: (s.get("subjects_leaked") or {}).get(k) for k in ("count", "fraction", "total")},
            "distributions": {
                k: {kk: vv for kk, vv in (dists.get(k) or {}).items() if kk in ("n", "mean", "sd", "quantiles")}
                for k in ("synthetic_to_train", "holdout_to_train")
            },
            "test": {
                k: (s.get("test") or {}).get(k)
                for k in ("name", "statistic", "p_value", "alternative", "interpretation")
            },
            "score_histogram": _histogram(scores),
        },
        "utility": None
        if utility is None
        else {
            "net": utility.data.get("net"),
            "ratio": utility.data.get("ratio"),
            "mixed_ratio": utility.data.get("mixed_ratio"),
            "mean_dice": {m: (v or {}).get("mean") for m, v in (utility.data.get("modes") or {}).items()},
        },
        "policy": policy.to_json(),
    }


def _histogram(scores: list[float], bins: int = 20) -> dict[str, list[float]] | None:
    if not scores:
        return None
    counts, edges = np.histogram(np.asarray(scores, dtype=np.float64), bins=bins)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _score_plot(audit: AuditInputs) -> str | None:
    scores = [m.score for m in audit.matches if m.score is not None]
    if not scores:
        return None
    fig, ax = pyplot().subplots(figsize=(6.4, 3.2), dpi=100)
    ax.hist(scores, bins=30, color="#4c72b0", alpha=0.8, label="synthetic → nearest training image")
    hq = _quantiles((audit.summary.get("distributions") or {}).get("holdout_to_train") or {})
    for _q, v in hq.items():
        ax.axvline(v, color="#55a868", lw=1, ls=":", alpha=0.8)
    if hq:
        ax.plot([], [], color="#55a868", ls=":", label="holdout → train quantiles")
    ax.axvline(audit.threshold, color="#c44e52", lw=2, label=f"threshold {audit.threshold:.3f}")
    ax.set_xlabel("similarity to the nearest training image")
    ax.set_ylabel("synthetic images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png_data_uri(figure_png(fig))


_DIST_NAMES = {"synthetic_to_train": "synthetic → train", "holdout_to_train": "holdout → train"}


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _num(x: Any, nd: int = 4) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{nd}f}" if isinstance(x, int | float) and not isinstance(x, bool) else html.escape(str(x))


def report_html(
    data: Mapping[str, Any], audit: AuditInputs, utility: UtilityInputs | None, private: Collection[str]
) -> str:
    """Render :func:`report_json`'s ``data`` as one self-contained HTML page."""
    e = html.escape
    released = data["decision"] == "release"
    checks = _table(
        [
            [
                ("✔ pass" if c["passed"] else "✘ FAIL"),
                e(c["name"]),
                e(c["value"]),
                e(c["limit"]),
                e(c["detail"]),
            ]
            for c in data["checks"]
        ],
        ["", "check", "figure", "policy", "note"],
    )
    counts = _table([[e(k.replace("_", " ")), str(v)] for k, v in data["counts"].items()], ["images", "count"])
    mem = data["memorization"]
    cal = mem.get("calibration") or {}
    drows = []
    for name, d in mem["distributions"].items():
        q = _quantiles(d)
        qs = ", ".join(f"q{k:g}: {v:.3f}" for k, v in q.items())
        drows.append(
            [e(_DIST_NAMES.get(name, name)), _num(d.get("n"), 0), _num(d.get("mean")), _num(d.get("sd")), e(qs)]
        )
    dist = _table(drows, ["scores", "n", "mean", "sd", "quantiles"])
    test = mem.get("test") or {}
    plot = _score_plot(audit)
    plot_html = f'<img alt="score histogram" src="{plot}">' if plot else ""
    util_html = "<p>No utility audit was run.</p>"
    if utility is not None:
        u = data["utility"] or {}
        ratio = u.get("ratio") or {}
        means = u.get("mean_dice") or {}
        rows = [
            [
                e(r),
                *(_num((means.get(m) or {}).get(r), 3) for m in ("real", "synthetic", "mixed")),
                _num(ratio.get(r), 3),
            ]
            for r in ("WT", "TC", "ET")
        ]
        util_html = _table(rows, ["region", "Dice real", "Dice synthetic", "Dice mixed", "synthetic/real"])
        frag = utility.fragment
        if frag and not find_private_strings(frag.encode("utf-8"), private) and "<script" not in frag.lower():
            util_html += f'<div class="fragment">{frag}</div>'
        elif frag:
            logger.warning("utility fragment left out of the public report: it names a private id or has a script")
    warns = "".join(f"<li>{e(w)}</li>" for w in data["warnings"]) or "<li>none</li>"
    colour = "#2e7d32" if released else "#c62828"
    verdict = "RELEASE" if released else "REFUSED"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>synthgate release report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; color: #222; }}
.verdict {{ background: {colour}; color: white; padding: .6em 1em; border-radius: 6px; font-size: 1.4em; }}
table {{ border-collapse: collapse; margin: .6em 0; }}
td, th {{ border: 1px solid #ccc; padding: .25em .6em; }}
th {{ background: #f3f3f3; }} .note {{ color: #555; font-size: .9em; }}
</style></head><body>
<h1>synthgate release report</h1>
<div class="verdict">{verdict}</div>
<p class="note">Public report: statistics only, opaque ids, no image.
synthgate {e(str(data["synthgate_version"]))},
{e(str(data["created"]))}.</p>
<h2>Gate checks</h2>{checks}
<h2>Images</h2>{counts}
<h2>Memorization</h2>
<p>Threshold {_num(mem.get("threshold"))} ({e(str(cal.get("method", "unknown")))},
quantile {_num(cal.get("quantile"))},
expected false-positive rate {_num(cal.get("expected_false_positive_rate"))}); fraction flagged before removal
{_num(mem.get("fraction_flagged"))}; training subjects leaked {e(str(mem["subjects_leaked"].get("count")))} of
{e(str(mem["subjects_leaked"].get("total")))}.</p>
{dist}
<p>Test: {e(str(test.get("name")))}, statistic {_num(test.get("statistic"))}, p = {_num(test.get("p_value"))}.
{e(str(test.get("interpretation") or ""))}</p>
{plot_html}
<h2>Utility</h2>{util_html}
<h2>Licence</h2><p>Output {e(data["policy"]["licence"]["output"])}, training data
{e(data["policy"]["licence"]["training_data"])}.</p><ul>{warns}</ul>
</body></html>
"""
