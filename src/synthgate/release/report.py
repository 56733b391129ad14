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
from synthgate.release.explain import REGION_NAMES, check_meaning, licence_sentence, mann_whitney_sentence
from synthgate.release.gate import GateDecision
from synthgate.release.inputs import AuditInputs, UtilityInputs
from synthgate.release.policy import ReleasePolicy
from synthgate.release.privacy import find_private_strings
from synthgate.runtime import figure_png, png_data_uri, pyplot

logger = logging.getLogger(__name__)

UTILITY_PNG = "utility.png"
SHOWN_QUANTILES = (0.5, 0.95, 0.99, 1.0)  # holdout quantiles drawn on the histogram: the median and the upper tail


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


def score_figure(audit: AuditInputs) -> Any:
    """Histogram of the synthetic images' best scores with the threshold and each holdout quantile labelled
    (a matplotlib figure; ``None`` without scores)."""
    scores = [m.score for m in audit.matches if m.score is not None]
    if not scores:
        return None
    fig, ax = pyplot().subplots(figsize=(7.2, 3.6), dpi=110)
    ax.hist(scores, bins=30, color="#4c72b0", alpha=0.8, label="synthetic → nearest training image")
    hq = {q: v for q, v in _quantiles((audit.summary.get("distributions") or {}).get("holdout_to_train") or {}).items()
          if q in SHOWN_QUANTILES}
    lo, hi = min([*scores, *hq.values(), audit.threshold]), max([*scores, *hq.values(), audit.threshold])
    groups: list[list[tuple[float, float]]] = []  # quantiles closer than 3 % of the x range share one label
    for q, v in sorted(hq.items(), key=lambda kv: kv[1]):
        ax.axvline(v, color="#55a868", lw=1, ls=":")
        if groups and v - groups[-1][-1][1] < 0.03 * max(hi - lo, 1e-9):
            groups[-1].append((q, v))
        else:
            groups.append([(q, v)])
    for g in groups:
        names = ", ".join("median" if q == 0.5 else "max" if q == 1.0 else f"q{q:g}" for q, _ in g)
        ax.text(g[0][1], 0.98, f"holdout {names} ", transform=ax.get_xaxis_transform(), color="#2d6a3e",
                fontsize=7, rotation=90, ha="right", va="top")
    if hq:
        ax.plot([], [], color="#55a868", ls=":", label="holdout → train score quantiles")
    ax.axvline(audit.threshold, color="#c44e52", lw=2, label=f"threshold {audit.threshold:.3f}")
    ax.set_xlabel("similarity to the nearest training image (channel-mean Pearson r)")
    ax.set_ylabel("synthetic images")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


def _score_plot(audit: AuditInputs) -> str | None:
    """:func:`score_figure` as a PNG data URI."""
    fig = score_figure(audit)
    return None if fig is None else png_data_uri(figure_png(fig))


_DIST_NAMES = {"synthetic_to_train": "synthetic → train", "holdout_to_train": "holdout → train"}
_STATUS = {"pass": ("✔ pass", "pass"), "fail": ("✘ FAIL", "fail"), "waived": ("– waived", "waived")}


def _table(rows: list[list[str]], head: list[str], classes: list[str] | None = None) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        (f'<tr class="{classes[i]}">' if classes else "<tr>") + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
        for i, r in enumerate(rows)
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _num(x: Any, nd: int = 4) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{nd}f}" if isinstance(x, int | float) and not isinstance(x, bool) else html.escape(str(x))


def _checks_html(checks: list[Mapping[str, Any]]) -> str:
    e = html.escape
    rows, classes = [], []
    for c in checks:
        status = c.get("status") or ("pass" if c["passed"] else "fail")
        label, cls = _STATUS.get(status, (status, ""))
        measured = c["value"] != "not measured"
        note = e(check_meaning(c["name"]))
        if c["detail"]:
            note += f" <em>{e(c['detail'])}</em>"
        rows.append([label, f"<code>{e(c['name'])}</code>", e(c["value"]) if measured else "<em>not measured</em>",
                     e(c["limit"]), note])
        classes.append(cls)
    return _table(rows, ["status", "check", "figure", "policy", "what it measures"], classes)


def _utility_html(data: Mapping[str, Any], utility: UtilityInputs | None, private: Collection[str]) -> str:
    """The utility audit once: its public fragment when safe (else a table from utility.json), and utility.png."""
    e = html.escape
    if utility is None:
        return "<h2>Utility</h2><p>No utility audit was run.</p>"
    frag = utility.fragment
    if frag and not find_private_strings(frag.encode("utf-8"), private) and "<script" not in frag.lower():
        body = f'<div class="fragment">{frag}</div>'  # it brings its own heading
    else:
        if frag:
            logger.warning("utility fragment left out of the public report: it names a private id or has a script")
        u = data["utility"] or {}
        ratio, means = u.get("ratio") or {}, u.get("mean_dice") or {}
        rows = [[f"{e(r)} ({REGION_NAMES[r]})", *(_num((means.get(m) or {}).get(r), 3)
                                                for m in ("real", "synthetic", "mixed")), _num(ratio.get(r), 3)]
                for r in ("WT", "TC", "ET")]
        body = ("<h2>Utility</h2><p>Mean Dice on real test subjects of a segmentation network trained on each "
                "source; the ratio divides the synthetic-trained Dice by the real-trained one.</p>"
                + _table(rows, ["region", "Dice real", "Dice synthetic", "Dice mixed", "synthetic/real"]))
    png = utility.path / UTILITY_PNG
    if png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n":
        body += (f'<img alt="Dice per region and training source" '
                 f'src="{png_data_uri(png.read_bytes())}">')
    return body


def report_html(
    data: Mapping[str, Any], audit: AuditInputs, utility: UtilityInputs | None, private: Collection[str]
) -> str:
    """Render :func:`report_json`'s ``data`` as one self-contained HTML page."""
    e = html.escape
    released = data["decision"] == "release"
    statuses = [c.get("status") for c in data["checks"]]
    n_waived = statuses.count("waived")
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
    test_text = mann_whitney_sentence(test, data["decision"], mem.get("threshold"),
                                      data["counts"]["flagged_before_removal"], data["counts"]["released"])
    plot = _score_plot(audit)
    plot_html = (f'<img alt="histogram of similarity scores" src="{plot}">'
                 '<p class="note">Dotted green lines: quantiles of the holdout → train scores (real subjects the '
                 "generator never saw), the reference for what an unrelated image scores; red: the threshold.</p>"
                 if plot else "")
    lic = data["policy"]["licence"]
    warns = "".join(f"<li>{e(w)}</li>" for w in data["warnings"])
    colour = "#2e7d32" if released else "#c62828"
    verdict = "RELEASE" if released else "REFUSED"
    waived = (f" {n_waived} check(s) were waived by the policy and did not count." if n_waived else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>synthgate release report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 64em; margin: 2em auto; color: #222; }}
.verdict {{ background: {colour}; color: white; padding: .6em 1em; border-radius: 6px; font-size: 1.4em; }}
table {{ border-collapse: collapse; margin: .6em 0; }}
td, th {{ border: 1px solid #ccc; padding: .25em .6em; vertical-align: top; }}
th {{ background: #f3f3f3; }} .note {{ color: #555; font-size: .9em; }}
tr.pass td:first-child {{ color: #2e7d32; }} tr.fail td:first-child {{ color: #c62828; font-weight: bold; }}
tr.waived td {{ color: #777; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>synthgate release report</h1>
<div class="verdict">{verdict}</div>
<p>{"Every check the policy requires passed." if released else "At least one check failed; nothing was released."}
{e(waived)}</p>
<p class="note">Public report: statistics only, opaque ids, no image.
synthgate {e(str(data["synthgate_version"]))},
{e(str(data["created"]))}.</p>
<h2>Gate checks</h2>{_checks_html(data["checks"])}
<p class="note">pass: measured and within the policy; FAIL: outside it (the release is refused); waived: the
policy does not require this check, so it was not applied (not a pass).</p>
<h2>Images</h2>{counts}
<h2>Memorization</h2>
<p>Threshold {_num(mem.get("threshold"))} ({e(str(cal.get("method", "unknown")))},
quantile {_num(cal.get("quantile"))},
expected false-positive rate {_num(cal.get("expected_false_positive_rate"))}); fraction flagged before removal
{_num(mem.get("fraction_flagged"))}; training subjects leaked {e(str(mem["subjects_leaked"].get("count")))} of
{e(str(mem["subjects_leaked"].get("total")))}.</p>
{dist}
<p>{e(test_text)}</p>
{plot_html}
<section id="utility">{_utility_html(data, utility, private)}</section>
<h2>Licence</h2><p>{e(licence_sentence(lic["output"], lic["training_data"], data["warnings"]))}</p>
{f"<ul>{warns}</ul>" if warns else ""}
</body></html>
"""
