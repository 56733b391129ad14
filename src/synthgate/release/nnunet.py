"""nnU-Net v2 raw data set of a release: ``imagesTr/case_XXXX_000C.nii.gz``, ``labelsTr/``, ``dataset.json``.

NIfTI headers are built from scratch (the affine of the set's :class:`~synthgate.data.geometry.Geometry`: pixel
spacing and anatomical axes after ingest's resampling, nothing else): no description, auxiliary file or intent
name, so no text from a source file can leak. Each 2D image is stored as H x W x 1 (rows, columns, slice), the
slice axis with nnU-Net's 2D spacing (:data:`~synthgate.data.geometry.LONE_SLICE_SPACING`) so nnU-Net plans on
the image plane; the source's slice thickness is in ``dataset.json``.
nnU-Net needs consecutive label values, so source values are renumbered 0..K-1 in ``labelsTr``;
``dataset.json`` has exactly the fields of ``nnunetv2.dataset_conversion.generate_dataset_json`` and records,
as extra keys, the source value of each label and the geometry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthgate import __version__
from synthgate.data.geometry import LONE_SLICE_SPACING, Geometry
from synthgate.errors import InputError, IntegrityError
from synthgate.release.payload import ReleaseImages

NNUNET_DIR = "nnunet"
FILE_ENDING = ".nii.gz"
DATASET_NAME = "Dataset001_synthgate"
TEXT_FIELDS = ("descrip", "aux_file", "intent_name", "db_name")


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


def _label_names(r: ReleaseImages) -> dict[str, int]:
    names = dict(r.label_map.names) if r.label_map is not None else {}
    return {("background" if src == 0 else names.get(src, f"label_{src}")): dst
            for src, dst in label_renumbering(r).items()}


def dataset_json(r: ReleaseImages, *, name: str, licence: str, description: str,
                 citation: list[str], reference: str) -> dict[str, Any]:
    """``dataset.json`` with the fields, order and value types ``generate_dataset_json`` (nnU-Net v2) writes.

    ``channel_names`` (str keys), ``labels`` (int values; background 0, consecutive), ``numTraining``,
    ``file_ending``, ``licence``, ``converted_by``, then ``name``, ``reference``, ``release``, ``citation``,
    ``description``, and synthgate's own keys (``generate_dataset_json``'s ``**kwargs``): the source value of each
    label, the label convention and the geometry. (nnU-Net 2.x writes ``release`` under ``citation`` by mistake;
    synthgate writes the citation.)
    """
    renum = label_renumbering(r)
    out: dict[str, Any] = {
        "channel_names": {str(c): ch for c, ch in enumerate(r.channels)},
        "labels": _label_names(r) if r.labels is not None else {"background": 0},
        "numTraining": len(r),
        "file_ending": FILE_ENDING,
        "licence": licence,
        "converted_by": f"synthgate {__version__}",
        "name": name,
        "reference": reference,
        "release": __version__,
        "citation": citation,
        "description": description,
        "synthgate_source_label_values": {str(dst): src for src, dst in renum.items()},
        "synthgate_geometry": r.geometry.to_json(),
    }
    if r.label_map is not None:
        out["synthgate_label_convention"] = r.label_map.convention
    return out


def write_nnunet(r: ReleaseImages, payload: Path, dataset: dict[str, Any]) -> Path:
    """Write the nnU-Net tree under ``payload/nnunet/Dataset001_synthgate`` and return its folder.

    Args:
        r: the released images.
        payload: the bag's payload folder.
        dataset: its ``dataset.json`` (:func:`dataset_json`).
    """
    import nibabel as nib

    root = payload / NNUNET_DIR / DATASET_NAME
    (root / "imagesTr").mkdir(parents=True)
    affine = r.geometry.affine(r.images.shape[-2:], slice_spacing=LONE_SLICE_SPACING)
    for i, case in enumerate(r.ids):
        for c in range(r.images.shape[1]):
            nib.save(_nifti(r.images[i, c], affine), str(root / "imagesTr" / f"{case}_{c:04d}{FILE_ENDING}"))
    if r.labels is not None:
        (root / "labelsTr").mkdir()
        lut = np.zeros(256, dtype=np.uint8)
        for src, dst in label_renumbering(r).items():
            lut[src] = dst
        for i, case in enumerate(r.ids):
            nib.save(_nifti(lut[r.labels[i]], affine), str(root / "labelsTr" / f"{case}{FILE_ENDING}"))
    (root / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n", encoding="utf-8")
    return root


@dataclass(frozen=True, eq=False)
class NnunetImages:
    """What the nnU-Net tree holds, read back: images N x C x H x W, labels in source values."""

    ids: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray | None
    problems: tuple[str, ...]
    geometry: Geometry
    affine: np.ndarray | None  # of the first file read


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
        g = dataset["synthgate_geometry"]
        geometry = Geometry(tuple(g["spacing_mm"]), tuple(g["axes"]), bool(g["known"]))
    except (OSError, ValueError, KeyError, TypeError, InputError) as e:
        raise IntegrityError(f"{root / 'dataset.json'}: missing or unreadable ({e})") from None
    problems: list[str] = []
    first_affine: list[np.ndarray] = []
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
        if not first_affine:
            first_affine.append(np.asarray(img.affine))
        if not np.allclose(img.affine, geometry.affine(data.shape[:2], LONE_SLICE_SPACING), atol=1e-5):
            problems.append(f"{path.relative_to(payload)}: affine differs from the geometry in dataset.json "
                            f"({nib.aff2axcodes(img.affine)} vs {geometry.axes})")
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
        geometry=geometry,
        affine=first_affine[0] if first_affine else None,
    )
