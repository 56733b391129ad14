from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from synthgate.data.brats import detect_convention, discover_subjects, role_of
from synthgate.data.ingest import IngestConfig, Normalisation, ingest_cohort, normalise_volume, split_subjects
from synthgate.data.readers import load_set
from synthgate.errors import InputError, UsageError


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("BraTS2021_00000_t1.nii.gz", "t1"),
        ("BraTS2021_00000_t1ce.nii.gz", "t1c"),
        ("BraTS2021_00000_flair.nii.gz", "flair"),
        ("BraTS2021_00000_seg.nii.gz", "label"),
        ("BraTS-GLI-00000-000-t1n.nii.gz", "t1"),
        ("BraTS-GLI-00000-000-t2f.nii.gz", "flair"),
        ("BraTS-GLI-00000-000-t2w.nii.gz", "t2"),
        ("BraTS-GLI-00000-000-t1c.nii.gz", "t1c"),
        ("Flair_subtrMeanDivStd.nii.gz", "flair"),
        ("T1c_subtrMeanDivStd.nii.gz", "t1c"),
        ("OTMultiClass.nii.gz", "label"),
        ("brainmask.nii.gz", "brainmask"),
        ("TCGA-DU-7294_fla.nii.gz", "flair"),
        ("License_CC_BY_NC_SA_3.0.txt", None),
        ("notes.nii.gz", None),
    ],
)
def test_file_roles(name, role):
    assert role_of(name) == role


def test_phantom_ingest_gives_five_channel_stores_split_by_subject(phantom_cohort, phantom_stores):
    assert detect_convention(discover_subjects(phantom_cohort)) == "brats2021"
    sets = {k: load_set(phantom_stores / k) for k in ("train", "holdout", "test")}
    subjects = [set(s.subjects) for s in sets.values()]
    assert [len(x) for x in subjects] == [3, 1, 1]
    assert not (subjects[0] & subjects[1] or subjects[0] & subjects[2] or subjects[1] & subjects[2])
    tr = sets["train"]
    assert tr.channels == ("t1", "t1c", "t2", "flair", "label") and tr.label_channel == 4
    assert tr.shape == (5, 32, 32)
    img = tr.images[:, :4]
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert set(np.unique(tr.images[:, 4])) <= {0.0, 1.0, 2.0, 4.0}
    assert (tr.images[:, 4] > 0).any()
    record = json.loads((phantom_stores / "ingest.json").read_text())
    assert record["counts"]["train"]["subjects"] == 3
    assert sorted(s for v in record["splits"].values() for s in v) == sorted(p.name for p in phantom_cohort.iterdir())


def test_split_is_seeded_and_respects_fractions():
    subs = [f"s{i}" for i in range(10)]
    a = split_subjects(subs, (0.6, 0.2, 0.2), seed=1)
    assert [len(a[k]) for k in ("train", "holdout", "test")] == [6, 2, 2]
    assert a == split_subjects(subs, (0.6, 0.2, 0.2), seed=1)
    assert a != split_subjects(subs, (0.6, 0.2, 0.2), seed=2)
    small = split_subjects(subs[:3], (0.6, 0.2, 0.2), seed=0)
    assert [len(small[k]) for k in ("train", "holdout", "test")] == [1, 1, 1]
    assert split_subjects(subs[:2], (1.0, 0.0, 0.0), seed=0)["holdout"] == []


def test_normalisations():
    rng = np.random.default_rng(0)
    x = rng.normal(100, 20, size=(10, 10, 10)).astype(np.float32)
    brain = np.zeros_like(x, dtype=bool)
    brain[2:8, 2:8, 2:8] = True
    mm = normalise_volume(x, brain, Normalisation.ROBUST_MINMAX)
    assert mm.min() == 0.0 and mm.max() == 1.0 and (mm[~brain] == 0).all()
    inside = mm[brain]
    assert 0.4 < np.median(inside) < 0.6
    z = normalise_volume(x, brain, Normalisation.ZSCORE)
    assert abs(z[brain].mean()) < 1e-4 and abs(z[brain].std() - 1) < 1e-3
    rm = normalise_volume(x, brain, Normalisation.ROBUST_MAX)
    np.testing.assert_allclose(rm[brain], np.clip(x[brain] / np.percentile(x[brain], 99.5), 0, 1), rtol=1e-5)


def test_tumour_slices_only(phantom_cohort, tmp_path):
    r = ingest_cohort(phantom_cohort, tmp_path / "t", IngestConfig(size=16, slices="tumour", split=(1, 0, 0)))
    s = load_set(r.stores["train"])
    assert (s.images[:, 4].reshape(len(s), -1).max(axis=1) > 0).all()
    assert set(r.stores) == {"train"}


def test_ingest_reorients_to_a_canonical_frame(tmp_path):
    """The same volume stored in RAS and in LPS gives identical slices."""
    rng = np.random.default_rng(0)
    vol = rng.random((20, 24, 18)).astype(np.float32) + 1.0
    seg = np.zeros_like(vol, dtype=np.uint8)
    seg[5:9, 6:10, 4:12] = 2
    for name, flip, affine in (("ras", False, np.eye(4)), ("lps", True, np.diag([-1.0, -1.0, 1.0, 1.0]))):
        d = tmp_path / "cohort" / name
        d.mkdir(parents=True)
        v, s = (vol[::-1, ::-1], seg[::-1, ::-1]) if flip else (vol, seg)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(v), affine), d / f"{name}_flair.nii.gz")
        nib.save(nib.Nifti1Image(np.ascontiguousarray(s), affine), d / f"{name}_seg.nii.gz")
    r = ingest_cohort(tmp_path / "cohort", tmp_path / "out", IngestConfig(size=24, split=(1, 0, 0)))
    s = load_set(r.stores["train"])
    a, b = s.select_subjects(["lps"]), s.select_subjects(["ras"])
    assert len(a) == len(b) == 18
    np.testing.assert_allclose(a.images, b.images, atol=1e-6)
    # anterior (high y) is at the top of the image: the label block y in 6..9 maps to rows 24-1-9 .. 24-1-6
    rows = np.flatnonzero(b.images[8, 1].max(axis=1) > 0)
    assert rows.min() == 24 - 1 - 9 and rows.max() == 24 - 1 - 6


def _copy_cohort(src, dst):
    shutil.copytree(src, dst)
    return sorted(p for p in dst.iterdir())


def _rewrite(path, fn):
    img = nib.load(path)
    data = np.asarray(img.dataobj).astype(np.float32)
    new_data, affine = fn(data, img.affine.copy())
    nib.save(nib.Nifti1Image(new_data, affine), path)


@pytest.mark.parametrize(
    ("target", "fn", "match"),
    [
        ("t1", lambda d, a: (np.where(d > 0, np.nan, d), a), "NaN/Inf voxels"),
        ("t2", lambda d, a: (np.zeros_like(d), a), "constant volume"),
        ("flair", lambda d, a: (d[:-2], a), "shape .* differs"),
        ("t1ce", lambda d, a: (d, a + np.diag([0, 0, 0.5, 0])), "affine differs"),
        ("seg", lambda d, a: (np.where(d == 4, 3, d), a), "label values 3 are not in the brats2021"),
    ],
)
def test_validation_errors_name_the_file(phantom_cohort, tmp_path, target, fn, match):
    subjects = _copy_cohort(phantom_cohort, tmp_path / "c")
    bad = subjects[1] / f"{subjects[1].name}_{target}.nii.gz"
    _rewrite(bad, fn)
    with pytest.raises(InputError, match=f"{bad.name}: .*{match}"):
        ingest_cohort(tmp_path / "c", tmp_path / "out", IngestConfig(size=16))
    assert not (tmp_path / "out").exists()
    r = ingest_cohort(tmp_path / "c", tmp_path / "out", IngestConfig(size=16), on_error="skip")
    assert [s.path for s in r.skipped] == [str(subjects[1])]
    assert sum(c["subjects"] for c in r.counts.values()) == 4


def test_truncated_gzip_and_mismatched_subjects(phantom_cohort, tmp_path):
    subjects = _copy_cohort(phantom_cohort, tmp_path / "c")
    f = subjects[0] / f"{subjects[0].name}_t2.nii.gz"
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(InputError, match=f"{f.name}: cannot read"):
        ingest_cohort(tmp_path / "c", tmp_path / "out", IngestConfig(size=16))
    shutil.rmtree(tmp_path / "c")
    subjects = _copy_cohort(phantom_cohort, tmp_path / "c")
    (subjects[2] / f"{subjects[2].name}_t2.nii.gz").unlink()
    with pytest.raises(InputError, match=f"subject {subjects[2].name} has .* but {subjects[0].name} has"):
        ingest_cohort(tmp_path / "c", tmp_path / "out", IngestConfig(size=16))


def test_bad_settings_are_usage_errors(phantom_cohort, tmp_path):
    with pytest.raises(UsageError, match="--split"):
        IngestConfig(split=(0.5, 0.2, 0.2))
    with pytest.raises(UsageError, match="--size"):
        IngestConfig(size=2)
    ingest_cohort(phantom_cohort, tmp_path / "o", IngestConfig(size=16))
    with pytest.raises(UsageError, match="already exists"):
        ingest_cohort(phantom_cohort, tmp_path / "o", IngestConfig(size=16))


def test_brats_folder_loads_directly_as_a_set(phantom_cohort):
    s = load_set(phantom_cohort, ingest=IngestConfig(size=16))
    assert len(s.subject_ids) == 5 and s.shape == (5, 16, 16)


def test_progress_reports_stage_done_total(phantom_cohort, tmp_path):
    calls: list[tuple[str, int, int]] = []
    ingest_cohort(phantom_cohort, tmp_path / "s", IngestConfig(size=16), progress=lambda *c: calls.append(c))
    assert calls == [("ingest", i, 5) for i in range(1, 6)]
