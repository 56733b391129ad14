"""The figures of the private audit report: the score histogram and the top pairs, each pair shown with the
training image moved by its matched transform and their difference. They show training images: PRIVATE."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from synthgate.audit.memorization import MemorizationResult
from synthgate.audit.transforms import apply_match_transform
from synthgate.data.imageset import ImageSet
from synthgate.runtime import figure_png, pyplot

MAX_PAIRS = 12
DIFF_RANGE = 2.0  # |difference| of standardised channels shown from black (0) to full colour (2 sd)


def _png(fig: Any) -> bytes:
    """PNG bytes at a fixed resolution; compression level 3 (the default 6 took a third of the report's time)."""
    return figure_png(fig, dpi=110, pil_kwargs={"compress_level": 3})


def histogram_png(result: MemorizationResult) -> bytes:
    """``scores.png``: the synthetic images' and the null's best-match scores, and the threshold."""
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


def _pair_png(syn: np.ndarray, aligned: np.ndarray, channels: tuple[str, ...], label_channel: int | None) -> bytes:
    """One pair as a grid: rows synthetic | aligned training | |difference|, one column per channel (label too).

    The difference is that of the standardised channels (what Pearson r compares), on one fixed scale of 0 to
    :data:`DIFF_RANGE` standard deviations so pairs compare by eye; for the label, the pixels whose values differ.
    Image channels are shown in grey from their own minimum to maximum, the label in viridis from 0. The tiles
    are coloured here and drawn as one image (one axes instead of one per tile: a twelfth of the drawing time).
    """
    plt = pyplot()

    rows: list[list[np.ndarray]] = [[], [], []]
    for k in range(len(channels)):
        if k == label_channel:
            top = max(float(syn[k].max()), float(aligned[k].max()), 1.0)
            rows[0].append(_colour(syn[k], "viridis", 0.0, top))
            rows[1].append(_colour(aligned[k], "viridis", 0.0, top))
            rows[2].append(_colour((np.rint(syn[k]) != np.rint(aligned[k])).astype(np.float32), "magma", 0.0, 1.0))
        else:
            rows[0].append(_colour(syn[k], "gray"))
            rows[1].append(_colour(aligned[k], "gray"))
            rows[2].append(_colour(np.abs(_z(syn[k]) - _z(aligned[k])), "magma", 0.0, DIFF_RANGE))
    h, w = syn.shape[-2:]
    gap = max(2, w // 32)
    grid = np.ones((3 * h + 2 * gap, len(channels) * w + (len(channels) - 1) * gap, 3), np.float32)
    for r, tiles in enumerate(rows):
        for k, tile in enumerate(tiles):
            grid[r * (h + gap) : r * (h + gap) + h, k * (w + gap) : k * (w + gap) + w] = tile
    fig = plt.figure(figsize=(2.3 * len(channels) + 0.6, 2.3 * 3 + 0.4))
    ax = fig.add_axes((0.06, 0.0, 0.94, 0.95))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    for k, name in enumerate(channels):
        ax.text(k * (w + gap) + w / 2, -gap, name, ha="center", va="bottom", fontsize=10)
    for r, what in enumerate(("synthetic", "training, aligned", "|difference|")):
        ax.text(-gap, r * (h + gap) + h / 2, what, ha="right", va="center", rotation=90, fontsize=10)
    return _png(fig)


def _colour(x: np.ndarray, cmap: str, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """H x W x 3 RGB in [0, 1] of ``x`` through a matplotlib colormap, from ``lo`` to ``hi`` (default: its range)."""
    from matplotlib import colormaps

    lo = float(x.min()) if lo is None else lo
    hi = float(x.max()) if hi is None else hi
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(x)
    return np.asarray(colormaps[cmap](t)[..., :3], np.float32)


def pair_pngs(result: MemorizationResult, train: ImageSet, synthetic: ImageSet) -> list[tuple[int, bytes]]:
    """(synthetic row, PNG) for each pair :func:`_top_pairs` picks."""
    s = result.synthetic
    pick = _top_pairs(result)
    if not len(pick):
        return []
    syn = synthetic.read_rows(pick)
    tr = train.read_rows(s.train_row[pick])
    return [(int(i), _pair_png(syn[r], apply_match_transform(tr[r], bool(s.flip[i]), float(s.angle_deg[i]),
                                                             float(s.scale[i]), float(s.shift_y[i]),
                                                             float(s.shift_x[i])),
                               train.channels, train.label_channel))
            for r, i in enumerate(pick)]


def stack_png(pngs: list[bytes]) -> bytes:
    """The pair grids one under another, as ``top_pairs.png``."""
    from PIL import Image

    if not pngs:
        img = Image.new("RGB", (320, 40), "white")
    else:
        parts = [Image.open(io.BytesIO(b)).convert("RGB") for b in pngs]
        img = Image.new("RGB", (max(p.width for p in parts), sum(p.height for p in parts)), "white")
        y = 0
        for p in parts:
            img.paste(p, (0, y))
            y += p.height
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
