"""Readers for every image-set input of DESIGN.md, behind one entry point: :func:`load_set`.

* a slice store (``meta.json`` + ``images.npy``);
* a folder of per-image files, ``.npy`` (C x H x W or H x W), ``.png`` (grey or multi-channel) and 2D
  ``.nii``/``.nii.gz``; the id is the file stem;
* a BraTS-style folder of subject folders (or one subject folder), sliced on load with the ingest settings.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthgate.data.brats import looks_like_brats
from synthgate.data.config import IngestConfig, OnError
from synthgate.data.imageset import ImageSet, Skipped, name_channels
from synthgate.data.ingest import slice_cohort
from synthgate.data.store import is_store, read_store
from synthgate.data.subjects import PER_IMAGE, SUBJECTS_KEY
from synthgate.errors import InputError, UsageError
from synthgate.runtime import Progress

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".npy", ".png", ".nii", ".nii.gz")


def file_stem(path: Path) -> str:
    """File name without its image suffix (``.nii.gz`` counts as one)."""
    name = path.name
    for suffix in (".nii.gz", ".nii", ".npy", ".png"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")


def validate_array(arr: np.ndarray, where: str) -> None:
    """Raise :class:`InputError` for non-numeric data or NaN/Inf values (a constant image is valid: the audit
    reports it as zero-variance, as it does for a store)."""
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{where}: not numeric image data (dtype {arr.dtype})")
    finite = np.isfinite(arr)
    if not finite.all():
        raise InputError(f"{where}: {int((~finite).sum())} NaN/Inf values; fix or remove the file")


def read_image_file(path: Path) -> np.ndarray:
    """Read one 2D image file as C x H x W float32.

    A constant image is read (with a warning), as a store would hold it.

    Raises:
        InputError: unreadable, corrupt, not 2D, NaN/Inf, complex, or a palette PNG.
    """
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
        elif name.endswith(".png"):
            from PIL import Image

            with Image.open(path) as im:
                if im.mode in ("P", "PA"):
                    raise InputError(
                        f"{path}: a palette (indexed-colour) PNG: its values are colour-table indices, not "
                        "intensities; save it as greyscale"
                    )
                arr = np.asarray(im)
            if arr.ndim == 3:
                arr = np.moveaxis(arr, -1, 0)
        else:
            arr = _read_nifti_2d(path)
    except (OSError, ValueError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise InputError(f"{path}: cannot read ({type(e).__name__}: {e}); the file is corrupt or truncated") from None
    except Exception as e:  # nibabel and PIL raise their own exception types for corrupt files
        if type(e).__module__.split(".")[0] in ("nibabel", "PIL"):
            raise InputError(f"{path}: cannot read ({type(e).__name__}: {e}); the file is corrupt") from None
        raise
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"{path}: expected a 2D image (H x W or C x H x W), got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise InputError(f"{path}: complex values ({arr.dtype}); save a real image, e.g. its magnitude np.abs(x)")
    # a blank image is kept, as in a store: the audit reports it as zero-variance and the gate removes it
    validate_array(arr, str(path))
    if arr.size and float(arr.max()) == float(arr.min()):
        logger.warning("%s is a constant image; the audit reports it as zero-variance", path)
    return arr.astype(np.float32)


def _read_nifti_2d(path: Path) -> np.ndarray:
    """A 2D NIfTI image laid out as ingest lays out slices (:mod:`synthgate.data.geometry`), whatever its affine.

    The image is reoriented to RAS (nibabel); of its two in-plane axes the later one (superior or anterior)
    runs up the rows and the earlier one (right) along the columns, so an axial slice shows anterior up and a
    slice a release wrote reads back as it was written. Anything that is not one slice comes back squeezed.
    """
    import nibabel as nib

    img: Any = nib.load(path)
    data = np.asarray(img.dataobj)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or sorted(data.shape)[0] != 1:
        return np.squeeze(data)
    canon = nib.as_closest_canonical(nib.Nifti1Image(data, img.affine))
    vol = np.asarray(canon.dataobj)
    normal = int(np.argmin(vol.shape)) if 1 in vol.shape else 2
    cols, rows = (a for a in range(3) if a != normal)
    return np.ascontiguousarray(np.take(vol, 0, axis=normal).transpose(
        (rows - (rows > normal), cols - (cols > normal)))[::-1])


def read_image_folder(folder: Path, on_error: OnError = OnError.RAISE, subject_sep: str | None = None) -> ImageSet:
    """Read a folder of per-image files into a set (id = file stem).

    The subject of each image is its id, or the part of the id before ``subject_sep`` when given; without
    ``subject_sep`` the set is marked as having per-image subjects (:mod:`synthgate.data.subjects`).
    Images must share one shape; with ``on_error="skip"`` invalid files are skipped and listed in ``skipped``.
    """
    files = sorted(p for p in folder.iterdir() if _is_image_file(p))
    hidden = sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and
                    p.name.lower().endswith(IMAGE_SUFFIXES))
    if hidden:
        logger.warning("%s: %d hidden file(s) not read (names starting with '.', e.g. %s); rename them to include "
                       "them", folder, len(hidden), hidden[0])
    arrays: list[np.ndarray] = []
    ids: list[str] = []
    skipped: list[Skipped] = []
    for f in files:
        try:
            arr = read_image_file(f)
            if arrays and arr.shape != arrays[0].shape:
                raise InputError(
                    f"{f}: shape {arr.shape} differs from {arrays[0].shape} of {files[0].name}; "
                    "all images of a set must have one size"
                )
        except InputError as e:
            if on_error is OnError.SKIP:
                logger.warning("skipping %s", e)
                skipped.append(Skipped(str(f), str(e)))
                continue
            raise
        arrays.append(arr)
        ids.append(file_stem(f))
    if not arrays:
        raise InputError(f"{folder}: no readable image ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    c = arrays[0].shape[0]
    subjects = [i.split(subject_sep)[0] if subject_sep else i for i in ids]
    return ImageSet(
        images=np.stack(arrays),
        ids=tuple(ids),
        subjects=tuple(subjects),
        channels=tuple(f"c{i}" for i in range(c)),
        sources=("file",) * len(ids),
        meta={} if subject_sep else {SUBJECTS_KEY: str(PER_IMAGE)},
        skipped=tuple(skipped),
    )


def detect_set_kind(path: Path) -> str:
    """``"store"``, ``"images"`` or ``"brats"`` for a set path.

    Raises:
        InputError: the path does not exist or holds none of them.
    """
    if not path.exists():
        raise InputError(f"{path} does not exist; give a slice store, an image folder or a BraTS folder")
    if not path.is_dir():
        raise InputError(f"{path} is a file; give the folder that holds the set")
    if is_store(path):
        return "store"

    if looks_like_brats(path):
        return "brats"
    if any(_is_image_file(p) and _looks_2d(p) for p in path.iterdir()):
        return "images"
    raise InputError(
        f"{path}: neither a slice store, a folder of 2D images (.npy/.png/.nii) nor a BraTS-style cohort"
    )


def _looks_2d(path: Path) -> bool:
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return True
    try:
        import nibabel as nib

        return sum(d > 1 for d in nib.load(path).shape) <= 2  # type: ignore[attr-defined]
    except Exception:
        return True  # let the reader report the corrupt file


def load_set(
    path: str | os.PathLike[str],
    *,
    ingest: IngestConfig | None = None,
    on_error: OnError | str = OnError.RAISE,
    mmap: bool = True,
    progress: Progress | None = None,
    channels: Sequence[str] | None = None,
) -> ImageSet:
    """Load any image-set input of DESIGN.md.

    Args:
        path: a slice store, a folder of 2D image files, or a BraTS-style cohort folder.
        ingest: slicing settings for a BraTS folder (defaults of :class:`IngestConfig` when ``None``).
        on_error: ``"raise"`` stops at the first invalid file; ``"skip"`` skips it and lists it in ``skipped``.
        mmap: keep a store's images on disk.
        progress: called as ``progress("ingest", done, total)`` over the subjects of a BraTS folder.
        channels: names of a folder's channels in file order (``label`` marks the label channel); a store or
            BraTS folder names its own, and must agree.

    Raises:
        InputError: missing, invalid or empty input (exit 5).
    """
    mode = OnError.parse(on_error)
    p = Path(path)
    kind = detect_set_kind(p)
    if kind == "store":
        s = read_store(p, mmap=mmap)
    elif kind == "images":
        s = read_image_folder(p, on_error=mode)
    else:
        s = slice_cohort(p, ingest or IngestConfig(), on_error=mode, progress=progress)
    if len(s) == 0:
        raise InputError(f"{p}: the set is empty; check the path and the slice-selection settings")
    if channels is not None:
        if kind == "images":
            return name_channels(s, channels, str(p))
        if tuple(channels) != s.channels:
            raise InputError(f"--channels {','.join(channels)}: {p} names its own channels "
                             f"{','.join(s.channels)}; --channels is for folders of image files")
    return s


def parse_channels(text: str | None) -> tuple[str, ...] | None:
    """``"t1,t1c,t2,flair,label"`` -> the names (``None`` for ``None``).

    Raises:
        UsageError: an empty or repeated name.
    """
    if text is None:
        return None
    names = tuple(t.strip() for t in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise UsageError(f"--channels {text!r}: give distinct comma-separated names, e.g. t1,t1c,t2,flair,label")
    return names
