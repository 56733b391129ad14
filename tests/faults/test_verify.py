"""Row 10: ``release verify`` sees NIfTI header extensions and extra files at the bag's top level."""

from __future__ import annotations

import shutil
from pathlib import Path

import bagit
import nibabel as nib
import pytest

from tests.faults.conftest import cli


@pytest.fixture(scope="module")
def bundle(world: dict[str, Path]) -> Path:
    out = world["root"] / "bundle"
    if not out.exists():
        r = cli("release", "build", "--synthetic", world["synthetic"], "--audit", world["audit"],
                "--policy", world["policy"], "--out", out)
        assert r.exit_code == 0, r.output
    return out


def _copy(bundle: Path, tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    shutil.copytree(bundle, b)
    assert cli("release", "verify", b).exit_code == 0
    return b


def test_row10_nifti_header_extension_is_found_after_rebagging(bundle: Path, tmp_path: Path) -> None:
    b = _copy(bundle, tmp_path)
    f = sorted((b / "data" / "nnunet").rglob("*.nii.gz"))[0]
    img = nib.load(f)
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"patient BraTS2021_01-subj000 /data/brats/x.nii"))
    nib.save(img, f)
    bagit.Bag(str(b)).save(manifests=True)  # re-bagged: the checksums match again
    r = cli("release", "verify", b)
    assert r.exit_code == 4, r.output
    assert "nifti_geometry" in r.output and "header extension" in r.output and f.name in r.output


def test_row10_extra_top_level_file_is_found(bundle: Path, tmp_path: Path) -> None:
    b = _copy(bundle, tmp_path)
    (b / "notes.txt").write_text("subject list: BraTS2021_01-subj000\n")
    r = cli("release", "verify", b)
    assert r.exit_code == 4 and "top_level" in r.output and "notes.txt" in r.output, r.output
