"""The bundle: BagIt, HF and NIfTI round trips, atomic writes, verify failures, and privacy of every byte."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthgate.data.imageset import ImageSet
from synthgate.errors import UsageError
from synthgate.release.bundle import build_release
from synthgate.release.gate import ReleaseRefused
from synthgate.release.policy import ReleasePolicy
from synthgate.release.privacy import find_pixel_lines, pixel_lines
from synthgate.release.verify import verify_bundle

from .conftest import COPY_AT, COPY_OF, make_synthetic, make_train, write_audit, write_utility


def _expected(syn: ImageSet, keep: list[int]) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(syn.images[keep][:, :4], dtype=np.float32)
    labels = np.rint(syn.images[keep][:, 4]).astype(np.uint8)
    return images, labels


def test_bag_is_valid_and_complete(built: dict[str, Any]) -> None:
    import bagit

    bundle = built["result"].path
    bag = bagit.Bag(str(bundle))
    assert bag.is_valid()
    assert bag.version_info == (1, 0)
    assert (bundle / "bagit.txt").read_text() == "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    payload = set(bag.payload_files())
    for f in (
        "README.md",
        "provenance.json",
        "release_report.html",
        "release_report.json",
        "nnunet/Dataset001_synthgate/dataset.json",
        "data/train-00000-of-00001.parquet",
    ):
        assert f"data/{f}" in payload
    assert not list(bundle.parent.glob(".bundle.tmp-*"))


def test_hf_load_dataset_returns_the_images_exactly(built: dict[str, Any], tmp_path: Path) -> None:
    import datasets

    syn, keep = built["synthetic"], list(built["result"].decision.keep)
    ds = datasets.load_dataset(str(built["result"].path / "data"), split="train", cache_dir=str(tmp_path))
    ds = ds.with_format("numpy")
    images, labels = _expected(syn, keep)
    assert ds.num_rows == len(keep) == 23
    assert np.array_equal(np.asarray(ds["image"]), images)
    assert np.array_equal(np.asarray(ds["label"]), labels)
    assert list(ds["id"]) == [f"case_{i:04d}" for i in range(len(keep))]
    assert list(ds["seed"]) == [int(syn.seeds[i]) for i in keep]


def test_nifti_geometry_and_empty_headers(built: dict[str, Any]) -> None:
    import nibabel as nib

    root = built["result"].path / "data" / "nnunet" / "Dataset001_synthgate"
    dataset = json.loads((root / "dataset.json").read_text())
    assert dataset["numTraining"] == 23 and dataset["file_ending"] == ".nii.gz"
    assert dataset["labels"] == {
        "background": 0,
        "necrosis/non-enhancing tumour": 1,
        "oedema": 2,
        "enhancing tumour": 3,
    }
    syn, keep = built["synthetic"], list(built["result"].decision.keep)
    images, labels = _expected(syn, keep)
    for case in (0, 7, 22):
        for c in range(4):
            img = nib.load(str(root / "imagesTr" / f"case_{case:04d}_{c:04d}.nii.gz"))
            assert img.shape == (16, 16, 1)
            assert nib.aff2axcodes(img.affine) == ("P", "R", "S")
            assert np.allclose(nib.affines.voxel_sizes(img.affine), [1.2, 0.8, 999.0])
            assert np.array_equal(np.asarray(img.dataobj)[:, :, 0], images[case, c])
            for field in ("descrip", "aux_file", "intent_name"):
                assert img.header[field].tobytes().strip(b"\x00 ") == b""
        lab = np.asarray(nib.load(str(root / "labelsTr" / f"case_{case:04d}.nii.gz")).dataobj)[:, :, 0]
        remap = np.array([0, 1, 2, 0, 3], dtype=np.uint8)
        assert np.array_equal(lab, remap[labels[case]])
        assert set(np.unique(lab)) <= {0, 1, 2, 3}


def test_verify_passes_with_train(built: dict[str, Any]) -> None:
    res = verify_bundle(built["result"].path, train=built["train"])
    assert res.ok, res.to_json()
    assert {c.name for c in res.checks} == {
        "bagit",
        "top_level",
        "payload",
        "hf_load",
        "nifti_geometry",
        "hf_equals_nifti",
        "report",
        "store_geometry",
        "reaudit",
    }


def _copy(built: dict[str, Any], tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(built["result"].path, dst)
    return dst


@pytest.mark.parametrize(
    "target",
    [
        "data/README.md",
        "data/data/train-00000-of-00001.parquet",
        "data/nnunet/Dataset001_synthgate/imagesTr/case_0004_0002.nii.gz",
    ],
)
def test_one_changed_byte_fails_verify(built: dict[str, Any], tmp_path: Path, target: str) -> None:
    bundle = _copy(built, tmp_path)
    path = bundle / target
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    res = verify_bundle(bundle)
    assert not res.ok
    bag = next(c for c in res.checks if c.name == "bagit")
    assert not bag.passed and "data/" in bag.detail


def test_missing_and_extra_files_fail_verify(built: dict[str, Any], tmp_path: Path) -> None:
    bundle = _copy(built, tmp_path)
    (bundle / "data" / "nnunet" / "Dataset001_synthgate" / "labelsTr" / "case_0003.nii.gz").unlink()
    res = verify_bundle(bundle)
    assert {c.name for c in res.failed} >= {"bagit", "nifti_geometry"}
    bundle2 = _copy(built, tmp_path / "b")
    (bundle2 / "data" / "stray.txt").write_text("x")
    assert [c.name for c in verify_bundle(bundle2).failed] == ["bagit"]


@pytest.fixture(scope="module")
def lax_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ImageSet]:
    """A bundle built with a lax policy (no removal): it holds the synthetic copy of a training image."""
    tmp_path = tmp_path_factory.mktemp("lax")
    train = make_train()
    syn = make_synthetic(train)
    audit = write_audit(tmp_path / "audit", syn, train)
    lax = ReleasePolicy(remove_flagged=False, max_fraction_flagged=1.0)
    res = build_release(syn, audit, write_utility(tmp_path / "u"), lax, tmp_path / "bundle")
    return res.path, train


def test_reaudit_catches_a_copy_in_the_bundle(lax_bundle: tuple[Path, ImageSet]) -> None:
    """verify --train re-audits the bundle: the copy a lax policy let through must fail it."""
    path, train = lax_bundle
    v = verify_bundle(path, train=train)
    assert [c.name for c in v.failed] == ["reaudit"]
    assert "1 of 24" in v.failed[0].detail
    assert verify_bundle(path).ok  # without --train the bag itself is fine


def _all_bytes(bundle: Path) -> list[tuple[Path, bytes]]:
    """Every file of the bundle, gzip members decompressed, parquet read back as raw column bytes."""
    import pyarrow.parquet as pq

    out = []
    for p in sorted(bundle.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        out.append((p, data))
        if p.name.endswith(".gz"):
            out.append((p, gzip.decompress(data)))
        if p.suffix == ".parquet":
            table = pq.read_table(p)
            image = np.asarray(table.column("image").to_pylist(), dtype="<f4")
            out.append((p, image.tobytes()))
    return out


def test_no_training_image_or_real_id_in_any_byte(built: dict[str, Any]) -> None:
    train, syn = built["train"], built["synthetic"]
    files = _all_bytes(built["result"].path)
    private = set(train.ids) | set(train.subjects) | {"BraTS2021", "/private/", "/secret/", "gen-0"}
    lines = pixel_lines(train.images[:, :4])
    assert sum(map(len, lines.values())) > 12 * 4 * 16  # rows and columns of every training image
    for path, data in files:
        for s in private:
            assert s.encode() not in data, f"{s} in {path}"
        assert not find_pixel_lines(data, lines), f"training pixels in {path}"
    # the scan can fail: the synthetic copy of a training image is in the audited set but not in the bundle
    assert np.array_equal(syn.images[COPY_AT], train.images[COPY_OF])
    assert find_pixel_lines(np.ascontiguousarray(syn.images[COPY_AT, 1], dtype="<f4").tobytes(), lines)
    html = (built["result"].path / "data" / "release_report.html").read_text()
    assert "fragment" not in html.split("<h2>Utility</h2>")[1]  # the fragment names a real subject: left out


def test_privacy_scan_control_finds_a_copy(lax_bundle: tuple[Path, ImageSet]) -> None:
    """With removal off, the same byte scan finds the training pixels: the scan above is not vacuous."""
    path, train = lax_bundle
    lines = pixel_lines(train.images[:, :4])
    hits = [p for p, data in _all_bytes(path) if find_pixel_lines(data, lines)]
    assert any(p.suffix == ".parquet" for p in hits) and any(p.name.endswith(".nii.gz") for p in hits)


def test_refusal_writes_nothing(tmp_path: Path) -> None:
    train = make_train()
    syn = make_synthetic(train)
    audit = write_audit(tmp_path / "audit", syn, train)
    with pytest.raises(ReleaseRefused) as e:
        build_release(syn, audit, None, ReleasePolicy(), tmp_path / "bundle")
    assert e.value.exit_code == 3 and "utility" in str(e.value)
    assert not (tmp_path / "bundle").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["audit"]


def test_interrupted_build_leaves_no_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import synthgate.release.bundle as bundle_mod

    train = make_train()
    syn = make_synthetic(train)
    audit = write_audit(tmp_path / "audit", syn, train)
    util = write_utility(tmp_path / "u")

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_mod, "_make_bag", boom)
    with pytest.raises(KeyboardInterrupt):
        build_release(syn, audit, util, ReleasePolicy(), tmp_path / "bundle")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit", "u"]


def test_existing_bundle_needs_overwrite(built: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="--overwrite"):
        build_release(built["synthetic"], built["audit"], built["utility"], ReleasePolicy(), built["result"].path)


def test_public_report_and_provenance(built: dict[str, Any]) -> None:
    payload = built["result"].path / "data"
    report = json.loads((payload / "release_report.json").read_text())
    assert report["decision"] == "release"
    assert report["counts"]["released"] == 23 and report["counts"]["removed_flagged"] == 1
    assert sum(report["memorization"]["score_histogram"]["counts"]) == 24
    html = (payload / "release_report.html").read_text()
    assert "RELEASE" in html and "data:image/png;base64," in html
    prov = json.loads((payload / "provenance.json").read_text())
    assert prov["training_set"]["manifest_hash"].startswith("sha256:")
    assert prov["generator"] == {"kind": "diffusion", "checkpoint_sha256": "sha256:abc", "seed": 7}
    assert "train_path" not in prov["audit"]["settings"]
    card = (payload / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-nc-sa-4.0\n")
    for section in ("## Uses", "## Out-of-scope uses", "## Privacy considerations", "## Limitations", "## Citation"):
        assert section in card
    assert "1 of 24 audited images" in card


def test_provenance_hashes_the_generator_run(tmp_path: Path) -> None:
    from synthgate.release.provenance import file_hash, run_hashes

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"weights")
    (run / "training_images.csv").write_text("id,subject\na,b\n")
    got = run_hashes({"run": str(run)})
    assert got == {
        "checkpoint_sha256": file_hash(run / "checkpoint.pt"),
        "training_list_sha256": file_hash(run / "training_images.csv"),
    }
    assert got["checkpoint_sha256"] == "sha256:" + __import__("hashlib").sha256(b"weights").hexdigest()
    assert run_hashes({"run": str(tmp_path / "gone")}) == {}



def test_reaudit_catches_a_shifted_copy_the_pixel_score_misses(phantom_stores: Path) -> None:
    """A copy shifted by 3 pixels (9 % of the side) escapes a pixel-aligned Pearson check; verify --train doesn't."""
    from synthgate.data.readers import load_set
    from synthgate.release.reaudit import reaudit_bundle

    train = load_set(phantom_stores / "train").subset(range(0, 40, 2))
    holdout = load_set(phantom_stores / "holdout").subset([0, 5])
    x = np.concatenate([np.array(holdout.images), np.zeros_like(train.images[:1])])
    x[2, :, 3:, :] = train.images[7, :, :-3, :]  # the training image moved down 3 pixels, zero filled
    img_ch = list(train.image_channels)
    pixel_r = np.mean([np.corrcoef(x[2, c].ravel(), train.images[7, c].ravel())[0, 1] for c in img_ch])
    assert pixel_r < 0.9  # the pixel-aligned score does not see the copy
    res = reaudit_bundle(train, x[:, img_ch], x[:, train.label_channel], threshold=0.97)
    assert res.scores[2] >= 0.97 and res.nearest[2] == 7
    assert res.n_flagged == 1  # the unseen subject's slices are not copies
