"""Folders of generated images against an ingested store: channel names by --channels or by position."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from synthgate.cli import app
from synthgate.data.imageset import ImageSet, conform_to
from synthgate.data.labels import BRATS2021
from synthgate.data.readers import load_set, parse_channels
from synthgate.data.store import write_store
from synthgate.errors import InputError, UsageError

NAMES = ("t1", "t1c", "t2", "flair", "label")


def _store_set(n: int = 6, seed: int = 0, prefix: str = "BraTS") -> ImageSet:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 5, 16, 16)).astype(np.float32)
    x[:, 4] = (rng.random((n, 16, 16)) > 0.8) * 2.0
    return ImageSet(images=x, ids=tuple(f"{prefix}_{i:03d}" for i in range(n)),
                    subjects=tuple(f"{prefix}_s{i // 2}" for i in range(n)), channels=NAMES, label_channel=4, label_map=BRATS2021,
                    meta={"spacing": [3.75, 3.75, 1.0], "orientation": ["P", "R", "S"]})


def _folder(tmp_path: Path, images: np.ndarray, name: str = "gen") -> Path:
    d = tmp_path / name
    d.mkdir()
    for i, x in enumerate(images):
        np.save(d / f"sample_{i:03d}.npy", x)
    return d


def test_channels_name_a_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _store_set().images[:3])
    s = load_set(folder, channels=NAMES)
    assert s.channels == NAMES and s.label_channel == 4
    with pytest.raises(InputError, match="names 4 channel"):
        load_set(folder, channels=NAMES[:4])
    store = write_store(_store_set(), tmp_path / "store")
    assert load_set(store, channels=NAMES).channels == NAMES
    with pytest.raises(InputError, match="names its own channels"):
        load_set(store, channels=("a", "b", "c", "d", "e"))
    with pytest.raises(UsageError):
        parse_channels("t1,,t2")
    with pytest.raises(UsageError):
        parse_channels("t1,t1")


def test_unnamed_channels_match_by_count_with_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ref = _store_set()
    s = load_set(_folder(tmp_path, ref.images[:3]))
    assert s.channels == ("c0", "c1", "c2", "c3", "c4")
    with caplog.at_level(logging.WARNING):
        m = conform_to(s, ref, "--synthetic", "--train")
    assert m.channels == NAMES and m.label_channel == 4 and m.label_map == BRATS2021
    assert m.meta["orientation"] == ["P", "R", "S"] and m.meta["spacing"] == [3.75, 3.75, 1.0]
    assert "matched to --train's t1,t1c,t2,flair,label by position" in caplog.text
    four = load_set(_folder(tmp_path, ref.images[:3, :4], "four"))
    assert conform_to(four, ref, "--synthetic", "--train").channels == four.channels  # left for the check


def test_audit_a_folder_against_a_store(tmp_path: Path) -> None:
    train = _store_set(8, seed=1)
    store = write_store(train, tmp_path / "train")
    holdout = write_store(_store_set(6, seed=2, prefix="Holdout"), tmp_path / "holdout")  # subjects unseen
    folder = _folder(tmp_path, np.concatenate([train.images[:1], _store_set(3, seed=3).images]))
    for extra, out in ((["--channels", ",".join(NAMES)], "a1"), ([], "a2")):
        res = CliRunner().invoke(app, ["audit", "memorization", "--train", str(store), "--synthetic", str(folder),
                                       "--holdout", str(holdout), "--out", str(tmp_path / out),
                                       "--transforms", "hflip", "--json", *extra])
        assert res.exit_code == 0, res.output
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        assert summary["counts"]["synthetic"] == 4 and summary["counts"]["flagged"] >= 1
    res = CliRunner().invoke(app, ["audit", "memorization", "--train", str(store), "--synthetic", str(folder),
                                   "--out", str(tmp_path / "a3"), "--channels", "t1,t2"])
    assert res.exit_code == 5 and "names its own channels" in res.output  # --channels is for folders
