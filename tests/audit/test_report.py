"""The private audit report: matched training images shown after alignment, full ids, every channel."""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit
from synthgate.audit.planted import _geom
from synthgate.audit.report import _aligned_training, write_audit_outputs
from synthgate.audit.robust import align, make_warps

from .conftest import blob_images, make_set

WARPS = make_warps((-10.0, -5.0, 5.0, 10.0), (0.95, 1.05))


def _r(a: np.ndarray, b: np.ndarray, channels: tuple[int, ...] = (0, 1)) -> float:
    return float(np.mean([np.corrcoef(a[c].ravel(), b[c].ravel())[0, 1] for c in channels]))


@pytest.mark.parametrize(
    ("flip", "kw"),
    [(False, {"angle": 10.0}), (False, {"dy": 3, "dx": -2}), (True, {"angle": -5.0, "dy": 4, "dx": 3}),
     (False, {"zoom": 1.05}), (True, {"angle": 5.0, "zoom": 0.95, "dy": -3, "dx": 2})],
)
def test_aligned_training_image_matches_the_synthetic_one(flip: bool, kw: dict[str, float]) -> None:
    """Moved by the transform the re-rank reports, the training image correlates with the synthetic copy better
    than the raw one does, and at least as well as the reported score."""
    x = blob_images(4, size=48, seed=13)
    src = x[1][..., ::-1] if flip else x[1]
    q = _geom(np.ascontiguousarray(src), label=2, **kw)
    candidates = np.concatenate([x, x[..., ::-1]])
    al = align(q, candidates, (0, 1), 2, WARPS, 5)
    cand = int(al.candidate[0])
    assert (cand >= 4) == flip and cand % 4 == 1
    moved = _aligned_training(x[1], flip, float(al.angle_deg[0]), float(al.scale[0]), float(al.shift_y[0]),
                              float(al.shift_x[0]), 2)
    assert _r(q, moved) > _r(q, x[1]) + 0.05
    assert _r(q, moved) >= float(al.score[0]) - 0.01
    assert set(np.unique(moved[2])) <= {0.0, 2.0}  # the label is moved by nearest neighbour


def test_report_shows_full_ids_every_channel_and_aligned_pairs(tmp_path: Path) -> None:
    train = make_set(blob_images(12, size=48, seed=1), "tr")
    long_ids = tuple(f"BraTS2021_01234_a_rather_long_subject_name_z{117 + i}" for i in range(len(train)))
    train = replace(train, ids=long_ids)
    holdout = make_set(blob_images(12, size=48, seed=2), "ho")
    syn_images = blob_images(6, size=48, seed=3)
    syn_images[0] = _geom(train.images[2], angle=5.0, dy=3, dx=-2, label=2)  # copies of _z119 and _z117
    syn_images[1] = _geom(train.images[0], dy=-2, dx=2, label=2)
    syn = make_set(syn_images, "gen")
    res = run_memorization_audit(train, syn, holdout, MemorizationConfig(threshold=0.9))
    assert res.flagged[0] and res.flagged[1]
    out = write_audit_outputs(res, tmp_path / "audit", train, syn)
    page = (out / "report.html").read_text()
    for full in (long_ids[2], long_ids[0]):
        assert f'<span class="id">{html.escape(full)}</span>' in page
    pngs = re.findall(r'<figure class="pair">.*?src="data:image/png;base64,([^"]+)"', page)
    assert len(pngs) >= 2
    grid = Image.open(io.BytesIO(base64.b64decode(pngs[0])))
    # 3 channels (c0, c1, label) side by side and 3 rows, each panel at least 200 px
    assert grid.width >= 3 * 200 and grid.height >= 3 * 200
    assert "moved onto it by the matched transform" in page
    top = Image.open(out / "top_pairs.png")
    assert top.width == grid.width and top.height >= len(pngs) * grid.height * 0.99
