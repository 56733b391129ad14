"""The private audit report: full ids, every channel, the matched training image shown after alignment
(``apply_match_transform`` itself is tested with the audit engine)."""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from synthgate.audit.calibration import MIN_HOLDOUT_SUBJECTS
from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit
from synthgate.audit.planted import _geom
from synthgate.audit.report import calibration_note, write_audit_outputs
from synthgate.audit.transforms import apply_match_transform
from synthgate.data.imageset import ImageSet

from .conftest import blob_images, make_set


def _r(a: np.ndarray, b: np.ndarray, channels: tuple[int, ...] = (0, 1)) -> float:
    return float(np.mean([np.corrcoef(a[c].ravel(), b[c].ravel())[0, 1] for c in channels]))


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
    # what the report draws as "training, aligned": the match's recorded transform applied to the training image
    s = res.synthetic
    for i in (0, 1):
        r = int(s.train_row[i])
        moved = apply_match_transform(train.images[r], bool(s.flip[i]), float(s.angle_deg[i]), float(s.scale[i]),
                                      float(s.shift_y[i]), float(s.shift_x[i]))
        assert _r(syn.images[i], moved) > max(_r(syn.images[i], train.images[r]) + 0.05, 0.95)
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


def test_calibration_note_warns_of_a_holdout_of_few_subjects(train_set: ImageSet, holdout_set: ImageSet,
                                                              unseen_set: ImageSet) -> None:
    alone = run_memorization_audit(train_set, unseen_set, holdout_set,
                                   MemorizationConfig(transforms=(), pool_null=False))
    assert alone.counts["holdout_subjects"] == len(holdout_set.subject_ids) < MIN_HOLDOUT_SUBJECTS
    note = calibration_note(alone)
    assert f"the holdout holds {len(holdout_set.subject_ids)} subjects" in note and "another patient" in note
    assert "without --holdout-only" in note
    many = replace(alone, counts=alone.counts | {"holdout_subjects": MIN_HOLDOUT_SUBJECTS})
    assert "holdout holds" not in calibration_note(many)
    pooled = run_memorization_audit(train_set, unseen_set, holdout_set, MemorizationConfig(transforms=()))
    assert pooled.calibration.method == "holdout+train-subject-disjoint"
    added = MIN_HOLDOUT_SUBJECTS - len(holdout_set.subject_ids)  # training subjects make up 10 (of 6 there)
    pooled_train = [i for i in pooled.null_ids if i in set(train_set.ids)]
    assert len({train_set.subjects[train_set.ids.index(i)] for i in pooled_train}) == added
    assert len(pooled_train) == added * 4  # every image of each (4 per subject)
    assert pooled.calibration.n_null == len(holdout_set) + added * 4
    subjects = MIN_HOLDOUT_SUBJECTS
    assert len(pooled.compared_scores) == len(holdout_set)  # the two-sample test keeps to the holdout
    assert pooled.calibration.null_subjects == subjects
    assert f"between the {subjects} subjects" in calibration_note(pooled)
