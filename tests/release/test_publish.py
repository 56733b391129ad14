"""publish: verify first, then upload the payload with huggingface_hub (mocked: there is no network)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from synthgate.errors import IntegrityError, UsageError
from synthgate.release.publish import publish_bundle


class FakeApi:
    """Records the HfApi calls publish makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def create_repo(self, *a: Any, **k: Any) -> str:
        self.calls.append(("create_repo", a, k))
        return f"https://huggingface.co/datasets/{a[0]}"

    def upload_folder(self, *a: Any, **k: Any) -> None:
        self.calls.append(("upload_folder", a, k))
        self.uploaded = sorted(
            p.relative_to(k["folder_path"]).as_posix() for p in Path(k["folder_path"]).rglob("*") if p.is_file()
        )

    def update_repo_settings(self, *a: Any, **k: Any) -> None:
        self.calls.append(("update_repo_settings", a, k))


def test_publish_uploads_the_payload(built: dict[str, Any]) -> None:
    api = FakeApi()
    res = publish_bundle(built["result"].path, "org/synthetic-brats", private=True, api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder", "update_repo_settings"]
    create, upload, settings = api.calls
    assert create[2] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload[2]["repo_type"] == "dataset" and upload[2]["repo_id"] == "org/synthetic-brats"
    assert Path(upload[2]["folder_path"]) == built["result"].path / "data"
    assert "README.md" in api.uploaded and "data/train-00000-of-00001.parquet" in api.uploaded
    assert not any(p.startswith(("bagit", "manifest")) for p in api.uploaded)
    assert settings[2] == {"gated": "manual", "repo_type": "dataset"}
    assert res.url.endswith("org/synthetic-brats") and res.verification.ok


def test_publish_refuses_a_bundle_that_does_not_verify(built: dict[str, Any], tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(built["result"].path, bundle)
    (bundle / "data" / "release_report.json").write_text("{}")
    api = FakeApi()
    with pytest.raises(IntegrityError, match="does not verify") as e:
        publish_bundle(bundle, "org/name", api=api)
    assert e.value.exit_code == 4 and api.calls == []


def test_publish_rejects_a_bad_repo_id(built: dict[str, Any]) -> None:
    api = FakeApi()
    with pytest.raises(UsageError, match="ORG/NAME"):
        publish_bundle(built["result"].path, "no-slash", api=api)
    assert api.calls == []
