"""The fault matrix (issue 14): bad inputs and faults as a hostile but realistic user would try them.

Every row asserts the exit code, a message naming the file or option, that nothing is left at ``--out`` or
beside it (no ``.NAME.tmp-*`` / ``.NAME.old-*``), and for data-loss rows that the previous outputs are intact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from synthgate.cli import app
from synthgate.data.imageset import ImageSet
from synthgate.data.labels import BRATS2021
from synthgate.data.store import write_store

runner = CliRunner()
CHANNELS = ("t1", "t2", "label")
SIZE = 16


def cli(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def leftovers(out: Path) -> list[str]:
    """``out`` itself if it exists, and every hidden temporary synthgate left beside it."""
    found = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return ([out.name] if out.exists() else []) + found


def images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random((n, len(CHANNELS), SIZE, SIZE), dtype=np.float32)
    x[:, -1] = rng.choice([0, 1, 2, 4], size=(n, SIZE, SIZE))
    return x


def make(images_: np.ndarray, prefix: str, per_subject: int = 2, source: str = "real",
         seeds: bool = False, meta: dict | None = None) -> ImageSet:  # type: ignore[type-arg]
    n = len(images_)
    return ImageSet(
        images=images_,
        ids=tuple(f"{prefix}-{i:06d}" for i in range(n)),
        subjects=tuple(f"{prefix}-subj{i // per_subject:03d}" for i in range(n)),
        channels=CHANNELS,
        label_channel=len(CHANNELS) - 1,
        label_map=BRATS2021,
        seeds=np.arange(n) if seeds else None,
        sources=(source,) * n,
        meta=meta or {},
    )


LAX = "[memorization]\nmax_fraction_flagged_before_removal = 1.0\n[utility]\nrequire_utility = false\n"
GENERATED = {"generator": {"kind": "diffusion", "seed": 0}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stores: train (8), holdout (6), two synthetic samples with the same ids, the second holding training
    images; and a real memorization audit of the first sample."""
    root = tmp_path_factory.mktemp("world")
    train = make(images(8, 1), "BraTS2021_01")
    holdout = make(images(6, 2), "BraTS2021_02")
    clean = make(images(10, 3), "syn", per_subject=10, source="diffusion", seeds=True, meta=GENERATED)
    leaky_imgs = np.array(clean.images)
    leaky_imgs[4:8] = train.images[:4]
    leaky = make(leaky_imgs, "syn", per_subject=10, source="diffusion", seeds=True, meta=GENERATED)
    paths = {name: write_store(s, root / name) for name, s in
             (("train", train), ("holdout", holdout), ("synthetic", clean), ("leaky", leaky))}
    r = cli("audit", "memorization", "--train", paths["train"], "--synthetic", paths["synthetic"],
            "--holdout", paths["holdout"], "--out", root / "audit", "--device", "cpu")
    assert r.exit_code == 0, r.output
    paths["audit"] = root / "audit"
    paths["policy"] = root / "lax.toml"
    paths["policy"].write_text(LAX)
    paths["root"] = root
    return paths
