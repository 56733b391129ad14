"""Content hashes (data/manifest.py) against a brute-force reference, and the overlap check."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from synthgate.data.manifest import (
    Manifest,
    block_digests,
    check_disjoint,
    check_manifest,
    set_digest,
    set_manifest,
)
from synthgate.data.store import read_store, write_store
from synthgate.errors import InputError
from tests.sets import make_set


def _reference(img: np.ndarray) -> str:
    return hashlib.sha256(repr(tuple(img.shape)).encode() + np.asarray(img, dtype="<f4").tobytes()).hexdigest()


def test_digests_match_a_per_image_reference_and_streamed_store(tmp_path: Path) -> None:
    s = make_set(n=7, seed=1)
    m = set_manifest(s, block_size=3)
    assert list(m.digests) == [_reference(x) for x in s.images]
    assert block_digests(s.images[2:5]) == list(m.digests[2:5])
    stored = read_store(write_store(s, tmp_path / "st"))
    assert set_manifest(stored, block_size=2) == m
    half = read_store(write_store(s, tmp_path / "h", dtype="float16"))
    again = replace(s, images=np.asarray(half.images, dtype=np.float32))
    assert set_manifest(half).digests == set_manifest(again).digests  # float16 digests as its float32 values


def test_set_digest_depends_on_ids_order_and_content() -> None:
    s = make_set(n=4)
    m = set_manifest(s)
    assert m.digest == set_digest(s.ids, m.digests)
    assert Manifest(m.ids[::-1], m.digests[::-1]).digest != m.digest
    assert Manifest(("a", *m.ids[1:]), m.digests).digest != m.digest
    x = np.array(s.images)
    x[2, 0, 0, 0] += 1e-6
    assert set_manifest(replace(s, images=x)).digests[2] != m.digests[2]


def test_check_manifest_names_the_first_differing_image() -> None:
    s = make_set(n=5)
    rec = set_manifest(s).to_json()
    check_manifest(rec, s, "--synthetic", "a/summary.json")
    x = np.array(s.images)
    x[3] = x[0]
    with pytest.raises(InputError, match=r"--synthetic is not the set audited in a/summary.json: image 3 \('img003'\)"):
        check_manifest(rec, replace(s, images=x), "--synthetic", "a/summary.json")
    with pytest.raises(InputError, match="4 images given, 5 audited"):
        check_manifest(rec, s.subset(range(4)), "--synthetic", "a/summary.json")
    with pytest.raises(InputError, match="the images differ"):  # a record without ids: no image to name
        check_manifest(set_manifest(s).to_json(images=False), replace(s, images=x), "--train", "u.json")
    with pytest.raises(InputError, match="records no content hashes"):
        check_manifest(None, s, "--train", "a/summary.json")


def test_check_disjoint_ids_subjects_content_but_not_blank_images() -> None:
    train = make_set(n=6, seed=1)
    other = replace(make_set(n=4, seed=2), ids=tuple(f"h{i}" for i in range(4)),
                    subjects=tuple(f"hs{i}" for i in range(4)))
    check_disjoint(train, other)
    with pytest.raises(InputError, match="image id"):
        check_disjoint(train, replace(other, ids=(train.ids[1], "h1", "h2", "h3")))
    with pytest.raises(InputError, match="subject"):
        check_disjoint(train, replace(other, subjects=("hs0", train.subjects[0], "hs2", "hs3")))
    x = np.array(other.images)
    x[1] = train.images[4]
    with pytest.raises(InputError, match="same content as a training image, e.g. 'h1'"):
        check_disjoint(train, replace(other, images=x))
    blank_t, blank_h = np.array(train.images), np.array(other.images)
    blank_t[0], blank_h[0] = 0.0, 0.0
    check_disjoint(replace(train, images=blank_t), replace(other, images=blank_h))
