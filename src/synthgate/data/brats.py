"""BraTS-style cohorts: subject folders with one 3D NIfTI per MR sequence plus a label file.

Recognised names (case-insensitive, by the tokens of the file name split at ``_``, ``-`` and ``.``):

| channel | BraTS 2020/2021 | BraTS 2023 | BRATS 2013 | others |
|---|---|---|---|---|
| ``t1`` | ``_t1`` | ``-t1n`` | ``T1_...`` | |
| ``t1c`` | ``_t1ce`` | ``-t1c`` | ``T1c_...`` | ``_t1c``, ``_t1gd`` |
| ``t2`` | ``_t2`` | ``-t2w`` | ``T2_...`` | |
| ``flair`` | ``_flair`` | ``-t2f`` | ``Flair_...`` | ``_fla`` |
| label | ``_seg`` | ``-seg`` | ``OTMultiClass`` | ``_label`` |
| brain mask | | | ``brainmask`` | |

The label convention is detected from the names (``-t1n``/``-t2w``/``-t2f``: brats2023; ``OTMultiClass``:
brats2013; otherwise brats2021) unless given.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthgate.data.labels import LabelMap, check_label_values, label_map_for
from synthgate.errors import InputError

SEQUENCES = ("t1", "t1c", "t2", "flair")
LABEL = "label"
BRAINMASK = "brainmask"

_TOKENS: dict[str, frozenset[str]] = {
    BRAINMASK: frozenset({"brainmask"}),
    LABEL: frozenset({"seg", "label", "labels", "otmulticlass"}),
    "flair": frozenset({"flair", "fla", "t2f"}),
    "t1c": frozenset({"t1ce", "t1c", "t1gd", "t1post"}),
    "t2": frozenset({"t2", "t2w"}),
    "t1": frozenset({"t1", "t1n"}),
}
_BRATS2023_TOKENS = frozenset({"t1n", "t2w", "t2f"})
_NIFTI = (".nii.gz", ".nii")


def _stem(name: str) -> str:
    low = name.lower()
    for s in _NIFTI:
        if low.endswith(s):
            return low[: -len(s)]
    return low


def role_of(filename: str) -> str | None:
    """The channel role of a NIfTI file name (``t1``, ``t1c``, ``t2``, ``flair``, ``label``, ``brainmask``)."""
    if not filename.lower().endswith(_NIFTI) or filename.startswith("."):
        return None
    tokens = set(re.split(r"[_\-.\s]+", _stem(filename)))
    for role, names in _TOKENS.items():
        if tokens & names:
            return role
    return None


@dataclass(frozen=True)
class SubjectFiles:
    """The files of one subject, by role."""

    subject: str
    folder: Path
    files: dict[str, Path]

    @property
    def sequences(self) -> tuple[str, ...]:
        return tuple(s for s in SEQUENCES if s in self.files)


def _subject_files(folder: Path) -> SubjectFiles | None:
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        role = role_of(p.name) if p.is_file() else None
        if role is None:
            continue
        if role in files:
            raise InputError(
                f"{folder}: both {files[role].name} and {p.name} look like the {role} file; keep one"
            )
        files[role] = p
    if not any(s in files for s in SEQUENCES):
        return None
    return SubjectFiles(subject=folder.name, folder=folder, files=files)


def discover_subjects(cohort: Path) -> list[SubjectFiles]:
    """Subject folders below ``cohort`` (or ``cohort`` itself when it is one subject folder), sorted by name."""
    own = _subject_files(cohort)
    if own is not None:
        return [own]
    subjects = [s for d in sorted(cohort.iterdir()) if d.is_dir() and (s := _subject_files(d)) is not None]
    _check_distinct(cohort, subjects)
    return subjects


def _check_distinct(cohort: Path, subjects: list[SubjectFiles]) -> None:
    """Refuse one patient under two folder names: it would land in two splits (train and test)."""
    seen: dict[object, str] = {}
    for s in subjects:
        keys = [("name", s.subject.casefold()), ("folder", s.folder.resolve()),
                *(("file", p.resolve()) for p in s.files.values())]
        for kind, key in keys:
            other = seen.setdefault(f"{kind}:{key}", s.subject)
            if other != s.subject:
                why = "names that differ only in letter case" if kind == "name" else "the same files (a symlink)"
                raise InputError(
                    f"{cohort}: subject folders {other!r} and {s.subject!r} have {why}: one patient would land "
                    "in two splits; keep one of them"
                )


def looks_like_brats(path: Path) -> bool:
    """True if ``path`` holds (or is) subject folders of 3D sequence NIfTI files."""
    try:
        subjects = discover_subjects(path)
    except InputError:
        return True  # a BraTS folder with a problem: let the reader report it
    if not subjects:
        return False
    try:
        import nibabel as nib

        first = subjects[0].files[subjects[0].sequences[0]]
        return sum(d > 1 for d in nib.load(first).shape) >= 3  # type: ignore[attr-defined]
    except Exception:
        return True


def detect_convention(subjects: list[SubjectFiles]) -> str:
    """The label convention suggested by the file names."""
    names = [p.name for s in subjects for p in s.files.values()]
    tokens = {t for n in names for t in re.split(r"[_\-.\s]+", _stem(n))}
    if tokens & _BRATS2023_TOKENS:
        return "brats2023"
    if "otmulticlass" in tokens:
        return "brats2013"
    return "brats2021"


@dataclass(frozen=True)
class SubjectVolumes:
    """One subject's volumes in the canonical RAS frame, each X x Y x Z."""

    subject: str
    sequences: dict[str, np.ndarray]
    label: np.ndarray | None
    brainmask: np.ndarray | None
    spacing: tuple[float, float, float]


def _load_volume(path: Path) -> tuple[Any, np.ndarray]:
    import nibabel as nib

    try:
        img = nib.load(path)
        canon = nib.as_closest_canonical(img)
        data = np.asarray(canon.dataobj, dtype=np.float32)
    except (OSError, ValueError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise InputError(f"{path}: cannot read ({type(e).__name__}: {e}); the file is corrupt or truncated") from None
    except Exception as e:
        if type(e).__module__.split(".")[0] == "nibabel":
            raise InputError(f"{path}: cannot read ({type(e).__name__}: {e}); the file is corrupt") from None
        raise
    data = np.squeeze(data)
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D volume, got shape {data.shape}")
    return canon, data


def load_subject(files: SubjectFiles, label_map: LabelMap) -> SubjectVolumes:
    """Load, reorient (RAS) and validate one subject's volumes.

    Raises:
        InputError: corrupt file, NaN/Inf, constant volume, shape or affine mismatch between the subject's
            files, or label values outside ``label_map``.
    """
    vols: dict[str, np.ndarray] = {}
    ref_path: Path | None = None
    ref_affine: np.ndarray | None = None
    ref_shape: tuple[int, ...] | None = None
    spacing = (1.0, 1.0, 1.0)
    for role in (*files.sequences, LABEL, BRAINMASK):
        path = files.files.get(role)
        if path is None:
            continue
        canon, data = _load_volume(path)
        if ref_affine is None:
            ref_path, ref_affine, ref_shape = path, canon.affine, data.shape
            spacing = tuple(float(z) for z in canon.header.get_zooms()[:3])  # type: ignore[assignment]
        else:
            if data.shape != ref_shape:
                raise InputError(
                    f"{path}: shape {data.shape} differs from {ref_shape} of {ref_path.name if ref_path else '?'}; "
                    "a subject's sequences must be co-registered"
                )
            if not np.allclose(canon.affine, ref_affine, atol=1e-3):
                raise InputError(
                    f"{path}: affine differs from that of {ref_path.name if ref_path else '?'}; "
                    "a subject's sequences must be co-registered"
                )
        finite = np.isfinite(data)
        if not finite.all():
            raise InputError(f"{path}: {int((~finite).sum())} NaN/Inf voxels; fix or remove the file")
        if role in SEQUENCES and float(data.max()) == float(data.min()):
            raise InputError(f"{path}: every voxel is {float(data.min()):g} (a constant volume); fix or remove it")
        vols[role] = data
    label = vols.pop(LABEL, None)
    if label is not None:
        check_label_values(label, label_map, str(files.files[LABEL]))
    mask = vols.pop(BRAINMASK, None)
    return SubjectVolumes(
        subject=files.subject,
        sequences=vols,
        label=label,
        brainmask=None if mask is None else mask > 0.5,
        spacing=spacing,
    )


def cohort_label_map(subjects: list[SubjectFiles], convention: str | None) -> LabelMap:
    """The label map given by name, or detected from the file names."""
    return label_map_for(convention or detect_convention(subjects))
