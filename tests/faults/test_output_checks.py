"""Row 15 and the --overwrite half of row 6: the output is checked before any work; replacing leaves nothing."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthgate.data.store import read_store, write_store
from tests.faults.conftest import cli, images, leftovers, make


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    """A folder nobody may write: a read-only tmpfs as root (root ignores permission bits), else mode 555."""
    path.mkdir()
    if os.geteuid() == 0:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
        if r.returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], check=False)
    else:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)


@pytest.mark.parametrize("command", ["audit", "build", "convert"])
def test_row15_read_only_out_is_refused_before_computing(command: str, world: dict[str, Path],
                                                          tmp_path: Path) -> None:
    with read_only_dir(tmp_path / "ro") as ro:
        out = ro / "sub" / "out"
        args = {
            "audit": ("audit", "memorization", "--train", world["train"], "--synthetic", world["synthetic"],
                      "--holdout", world["holdout"], "--device", "cpu"),
            "build": ("release", "build", "--synthetic", world["synthetic"], "--audit", world["audit"],
                      "--policy", world["policy"]),
            "convert": ("data", "convert", world["train"]),
        }[command]
        r = cli(*args, "--out", out)
        assert r.exit_code == 2, r.output
        assert "--out" in r.output and "cannot write" in r.output and str(ro) in r.output
        assert list(ro.iterdir()) == []
        assert "flagged" not in r.output  # refused before the audit ran


def test_row6_overwrite_onto_a_file_leaves_no_old_copy(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "store"
    out.write_text("an old file")
    r = cli("data", "convert", world["train"], "--out", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert read_store(out).ids == read_store(world["train"]).ids
    assert leftovers(out) == [out.name]


def test_row6_stale_temporaries_of_dead_processes_are_removed(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "store"
    proc = subprocess.Popen(["true"])
    proc.wait()
    stale = [tmp_path / f".store.tmp-{proc.pid}-abc", tmp_path / f".store.old-{proc.pid}"]
    for p in stale:
        p.mkdir()
        (p / "images.npy").write_bytes(b"real slices")
    alive = tmp_path / f".store.tmp-{os.getppid()}-xyz"  # a running process's temporary is left alone
    alive.mkdir()
    write_store(make(images(2, 0), "x"), out)
    assert not any(p.exists() for p in stale) and alive.exists()
    assert sorted(leftovers(out)) == sorted([out.name, alive.name])
