"""Rows 4 and 6: a full disk and SIGTERM / SIGKILL at random points leave nothing half-written behind."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from synthgate.data.store import read_store, write_store
from tests.faults.conftest import images, leftovers, make
from tests.faults.subproc import interrupt, run


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of 40 .npy images of 3 x 64 x 64 (about 2 MB as a store)."""
    d = tmp_path / "pngs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        np.save(d / f"img{i:03d}.npy", rng.random((3, 64, 64), dtype=np.float32))
    return d


def test_row4_file_size_limit_while_writing_a_store(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    r = run(["data", "convert", folder, "--out", out], max_file_bytes=256 << 10)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert str(out) in r.stderr and "File too large" in r.stderr and "nothing was written" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert leftovers(out) == []


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str = "1m") -> Iterator[Path]:
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_row4_disk_full_while_writing_a_store(folder: Path, tmp_path: Path) -> None:
    """Was SIGBUS (exit 135, no message): the store's images went through a writable memory map."""
    with tiny_tmpfs(tmp_path / "full") as disk:
        out = disk / "store"
        r = run(["data", "convert", folder, "--out", out])
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert str(out) in r.stderr and "No space left on device" in r.stderr
        assert leftovers(out) == []
        assert list(disk.iterdir()) == []


def test_row4_disk_full_leaves_the_previous_output_intact(folder: Path, tmp_path: Path) -> None:
    small = make(images(2, 0), "x")
    with tiny_tmpfs(tmp_path / "full") as disk:
        out = write_store(small, disk / "store")
        r = run(["data", "convert", folder, "--out", out, "--overwrite"])
        assert r.returncode == 1 and "No space left on device" in r.stderr, r.stderr
        assert read_store(out).ids == small.ids
        assert sorted(p.name for p in disk.iterdir()) == ["store"]


# the commands interrupted: each writes --out inside an atomic temporary
def _commands(world: dict[str, Path], cohort: Path, root: Path) -> dict[str, tuple[list[str | Path], Path]]:
    return {
        "ingest": (["data", "ingest", cohort, "--size", "32"], root / "stores"),
        "audit": (["audit", "memorization", "--train", world["train"], "--synthetic", world["synthetic"],
                   "--holdout", world["holdout"], "--device", "cpu"], root / "audit"),
        "build": (["release", "build", "--synthetic", world["synthetic"], "--audit", world["audit"],
                   "--policy", world["policy"]], root / "bundle"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ingest", "audit", "build"])
def test_row6_sigterm_and_sigkill_at_random_points(name: str, world: dict[str, Path], phantom_cohort: Path,
                                                    tmp_path: Path) -> None:
    rng = random.Random(name)
    args, out = _commands(world, phantom_cohort, tmp_path)[name]
    # SIGTERM: unwinds, removes its temporaries, exits 143 (or had finished: then the output is whole)
    code, err = interrupt([*args, "--out", out], out, signal.SIGTERM, rng.uniform(0.0, 0.3))
    assert code in (143, 0), err
    if code == 143:
        assert "terminated" in err and leftovers(out) == []
    # SIGKILL: may leave a temporary; the next run removes it (its process is gone) and writes --out whole
    code, err = interrupt([*args, "--out", out, "--overwrite"], out, signal.SIGKILL, rng.uniform(0.0, 0.3))
    assert code in (-signal.SIGKILL, 0), err
    r = run([*args, "--out", out, "--overwrite"])
    assert r.returncode == 0, r.stderr
    assert leftovers(out) == [out.name]
