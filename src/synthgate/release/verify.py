"""``release verify``: is a bundle whole, readable, consistent, and (with the training set) free of copies?

Checks, each reported separately: BagIt completeness and checksums; the payload files; the Hugging Face load
round trip; the NIfTI tree's geometry (against its ``dataset.json`` and, with ``train``, against the
training store's meta) and empty header text fields; the HF and NIfTI images being identical;
the public report agreeing with the data; and, with ``train``, a re-audit of every bundle image against the
training set at the threshold recorded in the report.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthgate.data.geometry import Geometry
from synthgate.data.imageset import ImageSet
from synthgate.release.bundle import CARD, PAYLOAD, PROVENANCE, REPORT_HTML, REPORT_JSON
from synthgate.release.checks import Check
from synthgate.release.hf import load_hf_payload
from synthgate.release.nnunet import NnunetImages, read_nnunet
from synthgate.release.reaudit import reaudit_bundle
from synthgate.runtime import optional_import

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyResult:
    """All verification steps of a bundle; ``ok`` when every one passed."""

    path: Path
    checks: tuple[Check, ...]
    n_images: int

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.path),
            "ok": self.ok,
            "images": self.n_images,
            "checks": [{"name": c.name, "ok": c.passed, "detail": c.detail} for c in self.checks],
        }


def _bagit_check(path: Path) -> Check:
    bagit = optional_import("bagit")
    try:
        bag = bagit.Bag(str(path))
        bag.validate()
    except bagit.BagValidationError as e:
        details = "; ".join(str(d) for d in (e.details or [])[:5]) or str(e.message)
        return Check("bagit", False, f"{e.message}: {details}")
    except bagit.BagError as e:
        return Check("bagit", False, f"not a valid bag: {e}")
    return Check("bagit", True, f"{len(bag.payload_entries())} payload files, checksums match")


def _top_level_check(path: Path) -> Check:
    """A bag's top level holds its tag files and the payload folder only (BagIt leaves others unchecked)."""
    extra = sorted(
        f.name for f in path.iterdir()
        if f.name not in ("bagit.txt", "bag-info.txt", PAYLOAD)
        and not (f.is_file() and f.name.startswith(("manifest-", "tagmanifest-")) and f.name.endswith(".txt"))
    )
    if extra:
        return Check("top_level", False, f"unexpected entries beside the payload: {', '.join(extra[:5])}")
    return Check("top_level", True, "tag files and data/ only")


def verify_bundle(path: str | os.PathLike[str], train: ImageSet | None = None) -> VerifyResult:
    """Verify a release bundle.

    Args:
        path: the bundle folder.
        train: the training set, to re-audit the bundle's images against (optional).

    Returns:
        Every check; the CLI exits 4 unless ``result.ok``.
    """
    p = Path(path)
    checks: list[Check] = []
    if not p.is_dir():
        return VerifyResult(p, (Check("bundle", False, f"{p} is not a folder"),), 0)
    checks.append(_bagit_check(p))
    checks.append(_top_level_check(p))
    payload = p / PAYLOAD
    missing = [f for f in (CARD, PROVENANCE, REPORT_JSON, REPORT_HTML) if not (payload / f).is_file()]
    checks.append(Check("payload", not missing, f"missing {', '.join(missing)}" if missing else "complete"))

    try:
        ids, hf_images, hf_labels = load_hf_payload(payload)
        checks.append(Check("hf_load", len(ids) > 0, f"{len(ids)} rows loaded with datasets.load_dataset"))
    except Exception as e:  # any failure of the HF loader is an integrity failure of the bundle
        checks.append(Check("hf_load", False, f"datasets.load_dataset failed: {type(e).__name__}: {e}"))
        return VerifyResult(p, tuple(checks), 0)

    try:
        nn = read_nnunet(payload)
    except Exception as e:  # nibabel raises many kinds on corrupt files
        checks.append(Check("nifti_geometry", False, f"{type(e).__name__}: {e}"))
        return VerifyResult(p, tuple(checks), len(ids))
    checks.append(
        Check(
            "nifti_geometry",
            not nn.problems,
            "; ".join(nn.problems[:5]) or f"{len(nn.ids)} cases, H x W x 1, affines match",
        )
    )
    checks.append(_same_images(ids, hf_images, hf_labels, nn.ids, nn.images, nn.labels))
    checks.append(_report_check(payload, len(ids)))
    if train is not None:
        checks.append(_store_geometry_check(nn, train))
        checks.append(_reaudit_check(payload, train, hf_images, hf_labels))
    return VerifyResult(p, tuple(checks), len(ids))


def _same_images(
    ids: tuple[str, ...],
    images: np.ndarray,
    labels: np.ndarray | None,
    nn_ids: tuple[str, ...],
    nn_images: np.ndarray,
    nn_labels: np.ndarray | None,
) -> Check:
    if sorted(ids) != sorted(nn_ids):
        return Check(
            "hf_equals_nifti", False, f"{len(ids)} HF ids but {len(nn_ids)} NIfTI cases, or different ids"
        )
    order = {c: i for i, c in enumerate(nn_ids)}
    idx = np.asarray([order[i] for i in ids], dtype=np.int64)
    if images.shape != nn_images[idx].shape or not np.array_equal(images, nn_images[idx]):
        return Check("hf_equals_nifti", False, "HF images differ from the NIfTI images")
    if (labels is None) != (nn_labels is None) or (
        labels is not None and nn_labels is not None and not np.array_equal(labels, nn_labels[idx])
    ):
        return Check("hf_equals_nifti", False, "HF labels differ from the NIfTI labels")
    return Check("hf_equals_nifti", True, "images and labels identical")


def _store_geometry_check(nn: NnunetImages, train: ImageSet) -> Check:
    """The NIfTI affines must say what the training store's meta says: spacing after resampling and axes."""
    want = Geometry.from_meta(train.meta)
    if not want.known:
        return Check("store_geometry", True, "the training store records no geometry; nothing to compare")
    if nn.affine is None:
        return Check("store_geometry", False, "no NIfTI image to compare with the store's geometry")
    import nibabel as nib

    axes = tuple(nib.aff2axcodes(nn.affine))
    sizes = [float(v) for v in nib.affines.voxel_sizes(nn.affine)]
    if axes != want.axes or not np.allclose(sizes[:2], want.pixel_spacing, rtol=1e-4):
        return Check("store_geometry", False,
                           f"NIfTI axes {''.join(axes)} and voxel sizes {[round(v, 4) for v in sizes]} mm, but the "
                           f"training store has {''.join(want.axes)} and {list(want.pixel_spacing)} mm pixels")
    return Check("store_geometry", True, f"axes {''.join(axes)}, {[round(v, 4) for v in sizes[:2]]} mm pixels as in "
                 "the training store's meta")


def _report_check(payload: Path, n: int) -> Check:
    try:
        report = json.loads((payload / REPORT_JSON).read_text(encoding="utf-8"))
        released = int(report["counts"]["released"])
        decision = report["decision"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return Check("report", False, f"{REPORT_JSON} unreadable: {e}")
    if decision != "release" or released != n:
        return Check("report", False, f"report says {decision} with {released} images; the data holds {n}")
    return Check("report", True, f"decision release, {n} images")


def _reaudit_check(payload: Path, train: ImageSet, images: np.ndarray, labels: np.ndarray | None) -> Check:
    try:
        report = json.loads((payload / REPORT_JSON).read_text(encoding="utf-8"))
        threshold = float(report["memorization"]["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return Check("reaudit", False, f"no threshold in {REPORT_JSON}: {e}")
    res = reaudit_bundle(train, images, labels, threshold)
    if res.n_flagged:
        return Check(
            "reaudit",
            False,
            f"{res.n_flagged} of {res.n} bundle images score >= {threshold:.4f} "
            f"against the training set (max {res.max_score:.4f}, {res.method})",
        )
    return Check("reaudit", True, f"no copy: max score {res.max_score:.4f} < {threshold:.4f} ({res.method})")
