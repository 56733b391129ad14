from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from synthgate.data.config import OnError
from synthgate.data.readers import load_set, read_image_folder
from synthgate.data.store import write_store
from synthgate.errors import InputError
from tests.sets import make_set


def _grid(seed: int, shape=(12, 10)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=shape).astype(np.uint8)


def test_npy_folder_round_trip(tmp_path):
    arrays = {f"a{i}": np.random.default_rng(i).random((2, 8, 9)).astype(np.float32) for i in range(3)}
    for k, v in arrays.items():
        np.save(tmp_path / f"{k}.npy", v)
    s = load_set(tmp_path)
    assert s.ids == ("a0", "a1", "a2")
    for i, k in enumerate(s.ids):
        np.testing.assert_array_equal(s.images[i], arrays[k])


def test_png_folder_grey_and_multichannel(tmp_path):
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(2):
        Image.fromarray(_grid(i)).save(grey / f"g{i}.png")
    s = load_set(grey)
    assert s.images.shape == (2, 1, 12, 10)
    np.testing.assert_array_equal(s.images[1, 0], _grid(1))
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    arr = np.stack([_grid(i) for i in range(3)], axis=-1)
    Image.fromarray(arr).save(rgb / "x.png")
    s = load_set(rgb)
    assert s.images.shape == (1, 3, 12, 10)
    np.testing.assert_array_equal(s.images[0, 2], _grid(2))


def test_2d_nifti_folder_round_trip(tmp_path):
    a = np.random.default_rng(0).random((12, 10)).astype(np.float32)  # rows x cols
    nib.save(nib.Nifti1Image(a.T, np.eye(4)), tmp_path / "slice1.nii.gz")  # (x, y), RAS
    s = load_set(tmp_path)
    assert s.ids == ("slice1",)
    np.testing.assert_array_equal(s.images[0, 0], a[::-1])  # anterior (high y) up, as ingest shows slices


def test_2d_nifti_is_read_through_its_affine(tmp_path):
    """A slice stored rows x columns with the P-R-S affine a release writes reads back unchanged."""
    from synthgate.data.geometry import Geometry

    a = np.random.default_rng(1).random((12, 10)).astype(np.float32)
    affine = Geometry((2.0, 1.5, 1.0), ("P", "R", "S"), known=True).affine(a.shape)
    nib.save(nib.Nifti1Image(a[:, :, None], affine), tmp_path / "case.nii.gz")
    np.testing.assert_array_equal(load_set(tmp_path).images[0, 0], a)


def test_store_path_loads_as_store(tmp_path):
    src = make_set(n=4)
    write_store(src, tmp_path / "st")
    s = load_set(tmp_path / "st")
    assert s.ids == src.ids and s.label_map == src.label_map


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.array([[np.nan, 1.0], [2.0, 3.0]], np.float32), "NaN/Inf"),
        (np.ones((4, 4), np.complex64), "complex values"),
    ],
)
def test_invalid_image_files(tmp_path, bad, match):
    np.save(tmp_path / "good.npy", np.random.default_rng(0).random((4, 4)).astype(np.float32))
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(InputError, match=f"bad.npy.*{match}"):
        load_set(tmp_path)
    s = read_image_folder(tmp_path, on_error=OnError.SKIP)
    assert s.ids == ("good",)
    assert len(s.skipped) == 1 and s.skipped[0].path.endswith("bad.npy")


def test_corrupt_files_name_the_file(tmp_path):
    np.save(tmp_path / "good.npy", np.random.default_rng(0).random((4, 4)).astype(np.float32))
    nib.save(nib.Nifti1Image(np.ones((4, 4), np.float32), np.eye(4)), tmp_path / "trunc.nii.gz")
    data = (tmp_path / "trunc.nii.gz").read_bytes()
    (tmp_path / "trunc.nii.gz").write_bytes(data[:40])
    with pytest.raises(InputError, match="trunc.nii.gz"):
        load_set(tmp_path)
    (tmp_path / "trunc.nii.gz").unlink()
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match="junk.png"):
        load_set(tmp_path)


def test_mixed_sizes_and_empty_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither a slice store"):
        load_set(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        load_set(tmp_path / "missing")
    d = tmp_path / "mixed"
    d.mkdir()
    np.save(d / "a.npy", np.random.default_rng(0).random((4, 4)).astype(np.float32))
    np.save(d / "b.npy", np.random.default_rng(1).random((5, 4)).astype(np.float32))
    with pytest.raises(InputError, match="b.npy: shape"):
        load_set(d)


def test_gzip_garbage_is_reported(tmp_path):
    with gzip.open(tmp_path / "g.nii.gz", "wb") as fh:
        fh.write(b"\x00" * 10)
    np.save(tmp_path / "ok.npy", np.arange(16, dtype=np.float32).reshape(4, 4))
    s = load_set(tmp_path, on_error="skip")
    assert s.ids == ("ok",) and "g.nii.gz" in s.skipped[0].path
