"""Release fixtures: a tiny training set, a synthetic set with one exact copy, and audit / utility folders
written in the format of docs/contracts.md (scored by brute force, so the flags are real)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthgate.data.imageset import ImageSet
from synthgate.data.labels import BRATS2021
from synthgate.data.manifest import binding_json

CHANNELS = ("t1", "t1c", "t2", "flair", "label")
H = W = 16
COPY_OF = 5  # training image copied into the synthetic set
COPY_AT = 3  # its index in the synthetic set


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.random((n, 5, H, W), dtype=np.float32)
    # smooth a little so images are image-like; keep them in [0, 1]
    x[:, :4] = (x[:, :4] + np.roll(x[:, :4], 1, axis=-1) + np.roll(x[:, :4], 1, axis=-2)) / 3
    lab = np.zeros((n, H, W), dtype=np.float32)
    for i in range(n):
        r, c = rng.integers(3, 12, size=2)
        lab[i, r - 3 : r + 3, c - 3 : c + 3] = 2
        lab[i, r - 2 : r + 2, c - 2 : c + 2] = 1
        lab[i, r - 1 : r + 1, c - 1 : c + 1] = 4
    x[:, 4] = lab
    return x


def make_train(n: int = 12, seed: int = 1) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(
        images=_images(rng, n),
        ids=tuple(f"BraTS2021_{1000 + i // 3:05d}_slice{60 + i % 3:03d}" for i in range(n)),
        subjects=tuple(f"BraTS2021_{1000 + i // 3:05d}" for i in range(n)),
        channels=CHANNELS,
        label_channel=4,
        label_map=BRATS2021,
        meta={"spacing": [1.2, 0.8, 2.0], "orientation": ["P", "R", "S"]},
    )


def make_synthetic(train: ImageSet, n: int = 24, seed: int = 2) -> ImageSet:
    rng = np.random.default_rng(seed)
    x = _images(rng, n)
    x[COPY_AT] = train.images[COPY_OF]
    return ImageSet(
        images=x,
        ids=tuple(f"gen-{i:05d}" for i in range(n)),
        subjects=("diffusion",) * n,
        channels=CHANNELS,
        label_channel=4,
        label_map=BRATS2021,
        seeds=np.arange(100, 100 + n),
        sources=("diffusion",) * n,
        meta={
            "spacing": [1.2, 0.8, 2.0],
            "orientation": ["P", "R", "S"],
            "generator": {
                "kind": "diffusion",
                "run_dir": "/private/runs/x",
                "checkpoint_sha256": "sha256:abc",
                "seed": 7,
            },
        },
    )


def brute_scores(synthetic: ImageSet, train: ImageSet) -> tuple[np.ndarray, np.ndarray]:
    """Best channel-mean Pearson r over the image channels (identity and flip) by a double loop."""
    best = np.full(len(synthetic), -np.inf)
    arg = np.zeros(len(synthetic), dtype=np.int64)
    for i in range(len(synthetic)):
        for j in range(len(train)):
            for flip in (False, True):
                a = synthetic.images[i, :4]
                a = a[..., ::-1] if flip else a
                r = np.mean([np.corrcoef(a[c].ravel(), train.images[j, c].ravel())[0, 1] for c in range(4)])
                if r > best[i]:
                    best[i], arg[i] = r, j
    return best, arg


def write_audit(
    out: Path,
    synthetic: ImageSet,
    train: ImageSet,
    threshold: float = 0.9,
    method: str = "holdout-quantile",
    summary_overrides: dict[str, Any] | None = None,
    flag_override: dict[int, bool] | None = None,
) -> Path:
    """An audit folder in the contract format, scored by brute force."""
    scores, arg = brute_scores(synthetic, train)
    flagged = scores >= threshold
    for i, f in (flag_override or {}).items():
        flagged[i] = f
    out.mkdir(parents=True)
    with (out / "matches.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["synthetic_id", "train_id", "train_subject", "score", "flagged", "transform"])
        for i, sid in enumerate(synthetic.ids):
            j = int(arg[i])
            w.writerow(
                [sid, train.ids[j], train.subjects[j], f"{scores[i]:.6f}", str(bool(flagged[i])).lower(), "identity"]
            )
    leaked = {train.subjects[int(arg[i])] for i in range(len(synthetic)) if flagged[i]}
    n_sub = len(train.subject_ids)
    summary: dict[str, Any] = {
        "synthgate_version": "0.1.0",
        "created": "2026-11-27T00:00:00+00:00",
        "counts": {
            "synthetic": len(synthetic),
            "train": len(train),
            "holdout": 6,
            "train_subjects": n_sub,
            "flagged": int(flagged.sum()),
            "zero_variance": 0,
        },
        "fraction_flagged": float(flagged.mean()),
        "threshold": threshold,
        "calibration": {"method": method, "quantile": 0.999, "n_null": 6, "expected_false_positive_rate": 0.001},
        "subjects_leaked": {"count": len(leaked), "fraction": len(leaked) / n_sub, "total": n_sub},
        "distributions": {
            "synthetic_to_train": {
                "n": len(synthetic),
                "mean": float(scores.mean()),
                "sd": float(scores.std()),
                "quantiles": {"0.5": float(np.median(scores)), "0.99": float(scores.max())},
            },
            "holdout_to_train": {"n": 6, "mean": 0.1, "sd": 0.05, "quantiles": {"0.5": 0.1, "0.99": 0.2}},
        },
        "test": {
            "name": "mann-whitney",
            "statistic": 1.0,
            "p_value": 0.5,
            "alternative": "greater",
            "interpretation": "no evidence",
        },
        "settings": {"train_path": "/secret/BraTS2021_01000", "transforms": ["identity", "hflip"]},
        "versions": {"synthgate": "0.1.0"},
    }
    summary["binding"] = binding_json({"synthetic": synthetic, "train": train})
    summary.update(summary_overrides or {})
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out


def write_utility(
    out: Path,
    ratio: dict[str, float | None] | None = None,
    fragment: str | None = None,
    real: dict[str, float] | None = None,
    synthetic: ImageSet | None = None,
) -> Path:
    """A utility folder in the contract format, bound to ``synthetic`` (default: the default synthetic set)."""
    synthetic = make_synthetic(make_train()) if synthetic is None else synthetic
    ratio = {"WT": 0.9, "TC": 0.85, "ET": 0.82} if ratio is None else ratio
    out.mkdir(parents=True)
    real = real or {"WT": 0.8, "TC": 0.7, "ET": 0.6}
    syn = {k: (None if ratio.get(k) is None else real[k] * ratio[k]) for k in real}  # type: ignore[operator]
    data = {
        "synthgate_version": "0.1.0",
        "created": "2026-11-27T00:00:00+00:00",
        "net": "unet",
        "seeds": [0],
        "epochs": 2,
        "config": {},
        "versions": {},
        "regions": ["WT", "TC", "ET"],
        "modes": {
            "real": {
                "mean": real,
                "sd": real,
                "per_seed": [],
                "per_subject": [{"seed": 0, "subject": "BraTS2021_02001", "WT": 0.8, "TC": 0.7, "ET": 0.6}],
            },
            "synthetic": {"mean": syn, "sd": syn, "per_seed": [], "per_subject": []},
        },
        "ratio": ratio,
        "mixed_ratio": {"WT": None, "TC": None, "ET": None},
        "binding": binding_json({"synthetic": synthetic}),
    }
    (out / "utility.json").write_text(json.dumps(data, indent=2))
    if fragment is not None:
        (out / "utility_fragment.html").write_text(fragment)
    return out


@pytest.fixture
def sets() -> tuple[ImageSet, ImageSet]:
    train = make_train()
    return train, make_synthetic(train)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One bundle built with the default policy, shared read-only by a module's tests."""
    from synthgate.release.bundle import build_release
    from synthgate.release.policy import ReleasePolicy

    root = tmp_path_factory.mktemp("built")
    train = make_train()
    syn = make_synthetic(train)
    audit = write_audit(root / "audit", syn, train)
    util = write_utility(root / "utility", fragment="<p>fragment BraTS2021_02001</p>")
    res = build_release(syn, audit, util, ReleasePolicy(), root / "bundle", train=train)
    return {"root": root, "train": train, "synthetic": syn, "audit": audit, "utility": util, "result": res}


def with_images(s: ImageSet, images: np.ndarray) -> ImageSet:
    return replace(s, images=images)
