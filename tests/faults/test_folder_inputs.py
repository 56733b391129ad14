"""Rows 8 and 16: image folders are read as a store would be, and silent misreadings are refused or warned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.faults.conftest import cli, leftovers
from tests.faults.subproc import run


def _folder(path: Path, prefix: str, n: int, seed: int) -> Path:
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        np.save(path / f"{prefix}{i:03d}.npy", rng.random((2, 16, 16), dtype=np.float32))
    return path


def test_row8_one_blank_image_in_a_folder_is_zero_variance_not_fatal(tmp_path: Path) -> None:
    train = _folder(tmp_path / "train", "t", 6, 1)
    hold = _folder(tmp_path / "holdout", "h", 6, 2)
    syn = _folder(tmp_path / "syn", "s", 6, 3)
    np.save(syn / "s_blank.npy", np.zeros((2, 16, 16), np.float32))
    out = tmp_path / "audit"
    r = cli("audit", "memorization", "--train", train, "--synthetic", syn, "--holdout", hold, "--out", out,
            "--device", "cpu")
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["zero_variance"] == 1 and summary["counts"]["synthetic"] == 7
    assert leftovers(out) == [out.name]


def test_row16_hidden_files_are_named_in_a_warning(tmp_path: Path) -> None:
    d = _folder(tmp_path / "imgs", "a", 3, 0)
    np.save(d / ".hidden.npy", np.ones((2, 16, 16), np.float32))
    np.save(d / "..dots.npy", np.ones((2, 16, 16), np.float32))
    r = run(["data", "info", d])
    assert r.returncode == 0, r.stderr
    assert "2 hidden file(s) not read" in r.stderr and "..dots.npy" in r.stderr


def test_row16_palette_png_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "pngs"
    d.mkdir()
    grey = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    Image.fromarray(grey, mode="L").save(d / "a.png")
    Image.fromarray(grey, mode="L").convert("P").save(d / "b.png")
    out = tmp_path / "store"
    r = cli("data", "convert", d, "--out", out)
    assert r.exit_code == 5 and "b.png" in r.output and "palette" in r.output, r.output
    assert leftovers(out) == []


def test_row16_complex_npy_is_refused(tmp_path: Path) -> None:
    d = _folder(tmp_path / "imgs", "a", 2, 0)
    z = np.random.default_rng(1).random((2, 16, 16)) * (1 + 1j)
    np.save(d / "c.npy", z.astype(np.complex64))
    out = tmp_path / "store"
    r = cli("data", "convert", d, "--out", out)
    assert r.exit_code == 5 and "c.npy" in r.output and "complex values" in r.output, r.output
    assert leftovers(out) == []
