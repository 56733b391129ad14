"""The nnU-Net tree: dataset.json as nnU-Net's own writer makes it, and geometry checked against the store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthgate.release.card import nnunet_dataset_json
from synthgate.release.payload import release_images
from synthgate.release.policy import ReleasePolicy
from synthgate.release.verify import verify_bundle

from .conftest import make_synthetic, make_train


def test_dataset_json_has_the_fields_of_generate_dataset_json(tmp_path: Path) -> None:
    """Same keys, order and values as nnunetv2's writer given the same arguments (skipped without nnunetv2)."""
    gen = pytest.importorskip("nnunetv2.dataset_conversion.generate_dataset_json")
    syn = make_synthetic(make_train())
    r = release_images(syn, range(len(syn)))
    ours = nnunet_dataset_json(r, ReleasePolicy(training_citation="Menze et al. 2015"))
    extra = {k: v for k, v in ours.items() if k.startswith("synthgate_")}
    gen.generate_dataset_json(
        str(tmp_path), dict(ours["channel_names"]), dict(ours["labels"]), ours["numTraining"], ours["file_ending"],
        citation=ours["citation"], dataset_name=ours["name"], reference=ours["reference"], release=ours["release"],
        description=ours["description"], license=ours["licence"], converted_by=ours["converted_by"], **extra,
    )
    theirs = json.loads((tmp_path / "dataset.json").read_text())
    assert list(theirs) == list(ours)
    # nnunetv2 2.x writes `release` under `citation`; every other value must agree
    assert {k: v for k, v in theirs.items() if k != "citation"} == {k: v for k, v in ours.items() if k != "citation"}


def test_dataset_json_fields_without_nnunet() -> None:
    syn = make_synthetic(make_train())
    r = release_images(syn, range(len(syn)))
    d = nnunet_dataset_json(r, ReleasePolicy(dataset_name='a "quoted" name', training_citation="Menze 2015"))
    assert list(d)[:6] == ["channel_names", "labels", "numTraining", "file_ending", "licence", "converted_by"]
    assert d["channel_names"] == {"0": "t1", "1": "t1c", "2": "t2", "3": "flair"}
    assert sorted(d["labels"].values()) == list(range(len(d["labels"]))) and d["labels"]["background"] == 0
    assert d["name"] == 'a "quoted" name' and d["citation"][-1] == "Menze 2015" and d["licence"] == "cc-by-nc-sa-4.0"
    assert d["synthgate_geometry"] == {"spacing_mm": [1.2, 0.8, 2.0], "axes": ["P", "R", "S"], "known": True}


def test_verify_compares_the_nifti_geometry_with_the_store(built: dict[str, Any]) -> None:
    train = built["train"]
    ok = {c.name: c for c in verify_bundle(built["result"].path, train=train).checks}["store_geometry"]
    assert ok.passed, ok.detail
    other = replace(train, meta={**train.meta, "spacing": [3.75, 3.75, 1.0]})
    bad = {c.name: c for c in verify_bundle(built["result"].path, train=other).checks}["store_geometry"]
    assert not bad.passed and "3.75" in bad.detail
    turned = replace(train, meta={**train.meta, "orientation": ["R", "A", "S"]})
    assert not {c.name: c for c in verify_bundle(built["result"].path, train=turned).checks}["store_geometry"].passed


def test_nifti_reads_back_through_the_folder_reader(built: dict[str, Any], tmp_path: Path) -> None:
    """Each released NIfTI channel, read as a 2D image folder, is the HF image exactly (the affine is honoured)."""
    import shutil

    from synthgate.data.readers import load_set

    src = built["result"].path / "data" / "nnunet" / "Dataset001_synthgate" / "imagesTr"
    for f in sorted(src.glob("case_000[0-2]_0003.nii.gz")):
        shutil.copy(f, tmp_path / f.name)
    s = load_set(tmp_path)
    syn, keep = built["synthetic"], list(built["result"].decision.keep)
    np.testing.assert_array_equal(s.images[:, 0], np.asarray(syn.images[keep[:3], 3], dtype=np.float32))
