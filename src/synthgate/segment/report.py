"""Outputs of the utility audit (docs/contracts.md): ``utility.json``, ``utility.png``,
``utility_fragment.html`` and the PRIVATE ``private_subject_map.csv``.

``utility.json``, the plot and the fragment hold statistics and opaque subject ids (``S01``...) only, so the
release report can embed them; the real test subject ids are only in ``private_subject_map.csv``.
"""

from __future__ import annotations

import csv
import html
import json
import os
from pathlib import Path
from typing import Any

from synthgate import __version__
from synthgate.atomic import atomic_dir
from synthgate.data.labels import REGIONS
from synthgate.runtime import figure_png, pyplot
from synthgate.segment.utility import UtilityResult

JSON_NAME = "utility.json"
PNG_NAME = "utility.png"
FRAGMENT_NAME = "utility_fragment.html"
PRIVATE_MAP_NAME = "private_subject_map.csv"
MODE_ORDER = ("real", "synthetic", "mixed")


def utility_json(result: UtilityResult) -> dict[str, Any]:
    """The ``utility.json`` document (docs/contracts.md), opaque subject ids only."""
    modes: dict[str, Any] = {}
    for name, m in result.modes.items():
        modes[name] = {
            "mean": m.mean,
            "sd": m.sd,
            "per_seed": [
                {
                    "seed": r.seed,
                    "mean": r.mean,
                    "best_epoch": r.best_epoch,
                    "best_val_dice": r.best_val_dice,
                    "n_train": r.n_train,
                    "n_val": r.n_val,
                    "val_split": r.val_split,
                    "train_seconds": round(r.train_seconds, 3),
                    "slices_per_second": round(r.slices_per_second, 2),
                }
                for r in m.runs
            ],
            "per_subject": [
                {
                    "seed": seed,
                    "subject": d.subject,
                    **d.dice,
                    "slices": d.slices,
                    "true_voxels": d.true_voxels,
                }
                for seed, d in m.per_subject
            ],
        }
    return {
        "synthgate_version": __version__,
        "created": result.created,
        "net": str(result.config.train.net),
        "seeds": list(result.config.seeds),
        "epochs": result.config.train.epochs,
        "mode": str(result.config.mode),
        "device": result.device,
        "config": result.config.to_json(),
        "versions": result.versions,
        "counts": result.counts,
        "regions": list(REGIONS),
        "dice": "per subject over its restacked slices; 1 when prediction and truth are both empty",
        "modes": modes,
        "ratio": result.ratio,
        "mixed_ratio": result.mixed_ratio,
        "binding": result.binding,
    }


def table_rows(result: UtilityResult) -> list[list[str]]:
    """Rows ``[mode, WT, TC, ET]`` ("mean ± sd") then the ratio rows, for a terminal or HTML table."""
    rows = [
        [name, *(_mean_sd(m.mean[r], m.sd[r]) for r in REGIONS)]
        for name in MODE_ORDER
        if (m := result.modes.get(name)) is not None
    ]
    for label, ratio in (("synthetic / real", result.ratio), ("mixed / real", result.mixed_ratio)):
        if any(v is not None for v in ratio.values()):
            rows.append([label, *("n/a" if ratio[r] is None else f"{ratio[r]:.0%}" for r in REGIONS)])
    return rows


def _mean_sd(mean: float, sd: float | None) -> str:
    return f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"


def plot_png(result: UtilityResult) -> bytes:
    """Bar plot: mean Dice (± sd over subjects and seeds) per region, one bar per mode."""
    plt = pyplot()
    names = [n for n in MODE_ORDER if n in result.modes]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        m = result.modes[name]
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(REGIONS))]
        ax.bar(xs, [m.mean[r] for r in REGIONS], width, yerr=[m.sd[r] or 0.0 for r in REGIONS], capsize=3, label=name)
    ax.set_xticks(range(len(REGIONS)), list(REGIONS))
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("Dice on real test subjects")
    seeds = len(result.config.seeds)
    ax.set_title(f"{result.config.train.net}: {result.counts['real_test_subjects']} test subjects, {seeds} seed(s)")
    ax.legend(loc="upper center", ncol=3, fontsize="small")
    fig.tight_layout()
    return figure_png(fig)


def fragment_html(result: UtilityResult) -> str:
    """An HTML fragment (no ``<html>``/``<body>``) for the public release report: statistics only."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in ("training source", *REGIONS))
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table_rows(result))
    c = result.counts
    cfg = result.config.train
    return (
        '<section class="synthgate-utility">\n'
        "<h2>Utility: segmentation trained on synthetic images, tested on real subjects</h2>\n"
        f"<p>{e(str(cfg.net))} trained for {cfg.epochs} epochs with {len(result.config.seeds)} seed(s); "
        f"Dice per test subject (whole tumour WT, tumour core TC, enhancing tumour ET) on "
        f"{c['real_test_subjects']} real test subjects ({c['real_test']} slices); mean ± sd over subjects "
        f"and seeds. Training slices: {c['synthetic']} synthetic, {c['real_train']} real "
        f"({c['real_train_subjects']} subjects).</p>\n"
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>\n"
        "<p>The ratio is the mean Dice of the network trained on synthetic (or mixed) slices divided by that "
        "of the same network trained on the real slices.</p>\n"
        "</section>\n"
    )


def write_utility_outputs(result: UtilityResult, out_dir: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write the utility audit's outputs into ``out_dir`` (atomically) and return it.

    Raises:
        UsageError: ``out_dir`` exists and ``overwrite`` is false.
    """
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        (tmp / JSON_NAME).write_text(json.dumps(utility_json(result), indent=2) + "\n", encoding="utf-8")
        (tmp / PNG_NAME).write_bytes(plot_png(result))
        (tmp / FRAGMENT_NAME).write_text(fragment_html(result), encoding="utf-8")
        with (tmp / PRIVATE_MAP_NAME).open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(("opaque_id", "subject"))
            w.writerows(result.subject_map.items())
    return Path(out_dir)
