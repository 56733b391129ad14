"""nnU-Net v2 raw data set of a release: ``imagesTr/case_XXXX_000C.nii.gz``, ``labelsTr/``, ``dataset.json``.

NIfTI headers are built from scratch (an affine with the pixel spacing, nothing else): no description,
auxiliary file or intent name, so no text from a source file can leak. Each 2D image is stored as
H x W x 1. nnU-Net needs consecutive label values, so source values are renumbered 0..K-1 in ``labelsTr``;
``dataset.json`` records the source value of each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthgate.errors import IntegrityError
from synthgate.release.payload import ReleaseImages

NNUNET_DIR = "nnunet"
DATASET_NAME = "Dataset001_synthgate"
TEXT_FIELDS = ("descrip", "aux_file", "intent_name", "db_name")


def affine_for(spacing: tuple[float, float]) -> np.ndarray:
    """The affine of every released image: pixel spacing on the diagonal, origin at 0."""
    return np.diag([float(spacing[0]), float(spacing[1]), 1.0, 1.0])


def _nifti(arr: np.ndarray, affine: np.ndarray) -> Any:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_dtype(arr.dtype)
    img = nib.Nifti1Image(arr[:, :, None], affine, header=header)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def label_renumbering(r: ReleaseImages) -> dict[int, int]:
    """Source label value -> consecutive nnU-Net value."""
    if r.label_map is not None:
        values: tuple[int, ...] = r.label_map.values
    else:
        values = tuple(int(v) for v in np.unique(r.labels if r.labels is not None else 0))
    return {int(v): k for k, v in enumerate(sorted(set(values) | {0}))}


def write_nnunet(r: ReleaseImages, payload: Path) -> Path:
    """Write the nnU-Net tree under ``payload/nnunet/Dataset001_synthgate`` and return its folder."""
    import nibabel as nib

    root = payload / NNUNET_DIR / DATASET_NAME
    (root / "imagesTr").mkdir(parents=True)
    affine = affine_for(r.spacing)
    for i, case in enumerate(r.ids):
        for c in range(r.images.shape[1]):
            nib.save(_nifti(r.images[i, c], affine), str(root / "imagesTr" / f"{case}_{c:04d}.nii.gz"))
    dataset: dict[str, Any] = {
        "channel_names": {str(c): name for c, name in enumerate(r.channels)},
        "numTraining": len(r),
        "file_ending": ".nii.gz",
        "synthgate_spacing": list(r.spacing),
    }
    if r.labels is not None:
        (root / "labelsTr").mkdir()
        renum = label_renumbering(r)
        lut = np.zeros(256, dtype=np.uint8)
        for src, dst in renum.items():
            lut[src] = dst
        for i, case in enumerate(r.ids):
            nib.save(_nifti(lut[r.labels[i]], affine), str(root / "labelsTr" / f"{case}.nii.gz"))
        names = dict(r.label_map.names) if r.label_map is not None else {}
        dataset["labels"] = {
            ("background" if src == 0 else names.get(src, f"label_{src}")): dst for src, dst in renum.items()
        }
        dataset["synthgate_source_label_values"] = {str(dst): src for src, dst in renum.items()}
        if r.label_map is not None:
            dataset["synthgate_label_convention"] = r.label_map.convention
    (root / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n", encoding="utf-8")
    return root


@dataclass(frozen=True, eq=False)
class NnunetImages:
    """What the nnU-Net tree holds, read back: images N x C x H x W, labels in source values."""

    ids: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray | None
    problems: tuple[str, ...]


def read_nnunet(payload: Path) -> NnunetImages:
    """Read the tree back, checking geometry and headers; problems are collected, not raised.

    Raises:
        IntegrityError: ``dataset.json`` is missing or unreadable.
    """
    import nibabel as nib

    root = payload / NNUNET_DIR / DATASET_NAME
    try:
        dataset = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
        n_ch = len(dataset["channel_names"])
        spacing = tuple(float(x) for x in dataset["synthgate_spacing"])
    except (OSError, ValueError, KeyError) as e:
        raise IntegrityError(f"{root / 'dataset.json'}: missing or unreadable ({e})") from None
    affine = affine_for((spacing[0], spacing[1]))
    problems: list[str] = []
    cases = sorted({p.name[: -len("_0000.nii.gz")] for p in (root / "imagesTr").glob("*_0000.nii.gz")})
    if len(cases) != dataset.get("numTraining"):
        problems.append(f"dataset.json numTraining = {dataset.get('numTraining')} but imagesTr has {len(cases)} cases")
    back = {int(k): int(v) for k, v in dataset.get("synthgate_source_label_values", {}).items()}
    lut = np.zeros(256, dtype=np.uint8)
    for dst, src in back.items():
        lut[dst] = src
    has_labels = (root / "labelsTr").is_dir()
    read: list[str] = []
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    shape: tuple[int, ...] | None = None

    def load(path: Path) -> np.ndarray | None:
        nonlocal shape
        if not path.is_file():
            problems.append(f"{path.relative_to(payload)} is missing")
            return None
        img: Any = nib.load(str(path))
        data = np.asarray(img.dataobj)
        if data.ndim != 3 or data.shape[2] != 1:
            problems.append(f"{path.relative_to(payload)}: shape {data.shape}, expected H x W x 1")
            return None
        shape = shape or data.shape
        if data.shape != shape:
            problems.append(f"{path.relative_to(payload)}: shape {data.shape} differs from {shape}")
            return None
        if not np.allclose(img.affine, affine):
            problems.append(f"{path.relative_to(payload)}: affine differs from the spacing in dataset.json")
        for field in TEXT_FIELDS:
            if field in img.header and np.asarray(img.header[field]).tobytes().strip(b"\x00 "):
                problems.append(f"{path.relative_to(payload)}: header field {field} holds text")
        if len(img.header.extensions):  # free-form blocks (DICOM, comments...) can name a patient or a path
            problems.append(f"{path.relative_to(payload)}: {len(img.header.extensions)} NIfTI header extension(s)")
        return data[:, :, 0]

    for case in cases:
        chans = [load(root / "imagesTr" / f"{case}_{c:04d}.nii.gz") for c in range(n_ch)]
        lab = load(root / "labelsTr" / f"{case}.nii.gz") if has_labels else None
        if any(x is None for x in chans) or (has_labels and lab is None):
            continue
        read.append(case)
        images.append(np.stack([np.asarray(x, dtype=np.float32) for x in chans if x is not None]))
        if lab is not None:
            labels.append(lut[np.asarray(lab, dtype=np.uint8)])
    return NnunetImages(
        ids=tuple(read),
        images=np.stack(images) if images else np.zeros((0, n_ch, 0, 0), np.float32),
        labels=(np.stack(labels) if labels else None) if has_labels else None,
        problems=tuple(problems),
    )
