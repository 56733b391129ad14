"""Geometry: affines built from spacing and axis codes, and what ingest records from a source volume."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from synthgate.data.geometry import SLICE_AXES, Geometry, slice_geometry
from synthgate.data.ingest import IngestConfig, ingest_cohort
from synthgate.data.readers import load_set
from synthgate.errors import InputError


@pytest.mark.parametrize("axes", [("P", "R", "S"), ("R", "A", "S"), ("L", "P", "I"), ("A", "L", "S")])
def test_affine_has_the_axes_and_spacing(axes: tuple[str, str, str]) -> None:
    g = Geometry((3.75, 2.5, 1.5), axes, known=True)
    a = g.affine((64, 48))
    assert nib.aff2axcodes(a) == axes
    assert np.allclose(nib.affines.voxel_sizes(a), [3.75, 2.5, 1.5])


def test_lone_slice_spacing_replaces_the_slice_thickness() -> None:
    a = Geometry((3.75, 3.75, 1.0), SLICE_AXES, known=True).affine((64, 64), slice_spacing=999.0)
    assert np.allclose(nib.affines.voxel_sizes(a), [3.75, 3.75, 999.0]) and nib.aff2axcodes(a) == SLICE_AXES


def test_affine_keeps_the_voxel_positions_of_the_ras_layout() -> None:
    """A P-R-S image is the RAS image transposed and flipped: every pixel lands at the same world point."""
    g = Geometry((2.0, 3.0, 1.0), SLICE_AXES, known=True)
    h, w = 5, 7
    a = g.affine((h, w))
    ras = np.diag([3.0, 2.0, 1.0, 1.0])  # x = columns (R), y = rows reversed (A)
    for r, c in ((0, 0), (4, 6), (2, 3)):
        here = a @ [r, c, 0, 1]
        there = ras @ [c, h - 1 - r, 0, 1]
        assert np.allclose(here, there)


def test_bad_geometry_is_refused() -> None:
    with pytest.raises(InputError, match="orientation"):
        Geometry((1.0, 1.0, 1.0), ("P", "P", "S"))
    with pytest.raises(InputError, match="spacing"):
        Geometry((1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="orientation"):
        Geometry.from_meta({"spacing": [1, 1, 1], "orientation": ["X", "R", "S"]})


def test_unknown_without_a_record() -> None:
    g = Geometry.from_meta({"spacing": [1.0, 1.0, 1.0]})  # an older store: 3D source spacing, no axes
    assert not g.known and g.to_meta() == {}


def test_slice_geometry_scales_by_the_padded_side() -> None:
    g = slice_geometry((240, 200, 155), (1.0, 1.2, 2.0), 64)
    assert g.spacing == pytest.approx((1.2 * 240 / 64, 1.0 * 240 / 64, 2.0))
    assert g.axes == SLICE_AXES and g.known


def test_ingest_records_the_geometry_of_the_source_volume(tmp_path) -> None:
    """An anisotropic LPS volume: the store's meta holds the resampled spacing, and the affine built from it puts
    an anterior-right marker anterior-right of the image centre, as the source affine does."""
    shape, zooms = (40, 48, 10), (1.0, 1.5, 2.5)
    vol = np.full(shape, 1.0, np.float32)
    vol[28:34, 34:40, :] = 5.0  # high x (right), high y (anterior) in RAS voxel terms
    seg = np.zeros(shape, np.uint8)
    seg[28:34, 34:40, :] = 2
    lps = np.diag([-zooms[0], -zooms[1], zooms[2], 1.0])  # stored flipped in x and y
    d = tmp_path / "cohort" / "s1"
    d.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(vol[::-1, ::-1]), lps), d / "s1_flair.nii.gz")
    nib.save(nib.Nifti1Image(np.ascontiguousarray(seg[::-1, ::-1]), lps), d / "s1_seg.nii.gz")
    src = nib.load(d / "s1_flair.nii.gz")
    src_data = np.asarray(src.dataobj)
    src_dir = _marker_direction(src_data, src.affine, src_data > 3)

    r = ingest_cohort(tmp_path / "cohort", tmp_path / "out", IngestConfig(size=16, split=(1, 0, 0)))
    meta = json.loads((r.stores["train"] / "meta.json").read_text())
    assert meta["orientation"] == ["P", "R", "S"]
    assert meta["spacing"] == pytest.approx([1.5 * 48 / 16, 1.0 * 48 / 16, 2.5])
    s = load_set(r.stores["train"])
    g = Geometry.from_meta(s.meta)
    a = g.affine(s.images.shape[-2:])
    assert nib.aff2axcodes(a) == ("P", "R", "S")
    assert np.allclose(nib.affines.voxel_sizes(a)[:2] * 16 / 48, [zooms[1], zooms[0]])
    img = s.images[5, 0][:, :, None]
    out_dir = _marker_direction(img, a, img > 0.5)
    assert np.sign(src_dir[:2]).tolist() == np.sign(out_dir[:2]).tolist() == [1.0, 1.0]


def _marker_direction(data: np.ndarray, affine: np.ndarray, marker: np.ndarray) -> np.ndarray:
    """World vector from the centre of the array to the centre of ``marker``."""
    centre = (np.asarray(data.shape[:3]) - 1) / 2
    m = np.argwhere(marker).mean(axis=0)
    return (affine[:3, :3] @ (m - centre))[:3]
