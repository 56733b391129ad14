"""Where a 2D slice lies in the patient: pixel spacing and anatomical axes, recorded in a store's ``meta.json``.

Ingest cuts axial slices from volumes reoriented to RAS and shows them with anterior up and the patient's right
to the right (see :func:`synthgate.data.slicing.slice_subject`): row indices run toward **P**osterior, column
indices toward the **R**ight, and the slice normal is **S**uperior. After padding to a square of ``s`` voxels
and resizing to ``size`` pixels, a pixel spans ``spacing * s / size`` mm. Both facts go into the store's meta as

* ``spacing``: ``[row_mm, column_mm, slice_mm]``;
* ``orientation``: nibabel axis codes of the same three axes, e.g. ``["P", "R", "S"]``;

and every NIfTI file a release writes gets the affine :meth:`Geometry.affine` builds from them with nibabel's
orientation helpers, so a viewer that honours the affine shows the slice as the source volume showed it.
A set without this record (a folder of PNG files, a store written before it existed) has an unknown geometry:
1 mm pixels in the same axes, and ``known`` is false so writers can say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthgate.errors import InputError

SLICE_AXES = ("P", "R", "S")  # rows, columns, slice normal of every slice ingest writes
#: Through-plane spacing of a lone 2D slice written as NIfTI: nnU-Net's 2D convention (its natural-image reader
#: uses 999). nnU-Net plans 2D on the two axes of smallest spacing, so the real slice thickness (1 mm for BraTS,
#: below the 3.75 mm pixels of a 64 px slice) would make it plan on the wrong plane.
LONE_SLICE_SPACING = 999.0
_RAS = ("R", "A", "S")


@dataclass(frozen=True)
class Geometry:
    """Pixel spacing and anatomical axes of a set's 2D images.

    Attributes:
        spacing: mm between neighbouring rows, columns and slices.
        axes: nibabel axis codes (the direction each index grows toward) of rows, columns and the slice normal.
        known: whether the geometry was recorded from a source volume (false: 1 mm and :data:`SLICE_AXES`
            assumed).
    """

    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    axes: tuple[str, str, str] = SLICE_AXES
    known: bool = False

    def __post_init__(self) -> None:
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise InputError(f"spacing {list(self.spacing)}: give three positive numbers (rows, columns, slice) in mm")
        from nibabel.orientations import axcodes2ornt

        try:
            ornt = axcodes2ornt(tuple(self.axes))
        except ValueError:
            ornt = np.full((3, 2), np.nan)
        if len(self.axes) != 3 or np.isnan(ornt).any() or len(set(ornt[:, 0])) != 3:
            raise InputError(f"orientation {list(self.axes)}: give three axis codes, one of L/R, A/P, S/I each")

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """In-plane spacing (rows, columns) in mm."""
        return self.spacing[0], self.spacing[1]

    def affine(self, shape: Sequence[int], slice_spacing: float | None = None) -> np.ndarray:
        """The 4 x 4 affine of an H x W x 1 array laid out in this geometry.

        Built as nibabel reorients images: the diagonal affine of the same voxels in RAS order, composed with
        :func:`nibabel.orientations.inv_ornt_aff` of the transform from RAS to :attr:`axes`. Voxel (0, 0, 0) of
        the RAS layout sits at the origin.

        Args:
            shape: H, W of the image.
            slice_spacing: the through-plane spacing to write instead of the source's slice thickness (a lone
                slice has no neighbour; see :data:`LONE_SLICE_SPACING`).
        """
        from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform

        target = axcodes2ornt(self.axes)
        zooms_ras = np.empty(3)
        shape_ras = np.empty(3, dtype=np.int64)
        dims = (*tuple(int(d) for d in shape[:2]), 1)
        zooms = (*self.spacing[:2], self.spacing[2] if slice_spacing is None else slice_spacing)
        for k, (ras_axis, _) in enumerate(target):
            zooms_ras[int(ras_axis)] = zooms[k]
            shape_ras[int(ras_axis)] = dims[k]
        to_target = ornt_transform(axcodes2ornt(_RAS), target)
        return np.diag([*zooms_ras, 1.0]) @ inv_ornt_aff(to_target, tuple(shape_ras))

    def to_meta(self) -> dict[str, Any]:
        """The ``spacing`` and ``orientation`` entries of a store's meta (nothing when unknown)."""
        if not self.known:
            return {}
        return {"spacing": [round(float(s), 6) for s in self.spacing], "orientation": list(self.axes)}

    def to_json(self) -> dict[str, Any]:
        return {"spacing_mm": [float(s) for s in self.spacing], "axes": list(self.axes), "known": self.known}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Geometry:
        """The geometry a store's meta records; unknown when it has no ``orientation`` (older stores, folders).

        Raises:
            InputError: the entries are present but malformed.
        """
        axes, spacing = meta.get("orientation"), meta.get("spacing")
        if axes is None or spacing is None:
            return cls()
        try:
            return cls(tuple(float(s) for s in spacing), tuple(str(a) for a in axes), known=True)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(f"store meta spacing {spacing!r} / orientation {axes!r} are not readable") from None


def slice_geometry(volume_shape: Sequence[int], volume_spacing: Sequence[float], size: int) -> Geometry:
    """The geometry of the slices ingest cuts from one RAS volume (X x Y x Z voxels of the given spacing).

    The in-plane extent is padded to a square of ``max(X, Y)`` voxels and resized to ``size`` pixels.
    """
    sx, sy, sz = (float(v) for v in volume_spacing[:3])
    side = max(int(volume_shape[0]), int(volume_shape[1]))
    zoom = side / size
    return Geometry((sy * zoom, sx * zoom, sz), SLICE_AXES, known=True)
