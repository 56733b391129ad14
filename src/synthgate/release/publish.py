"""``release publish``: upload a verified bundle's payload to a Hugging Face dataset repository.

The bundle is verified first; a bundle that does not verify is never uploaded. The payload folder becomes the
repository root (the dataset card ``README.md`` at the top, parquet shards under ``data/``). ``upload_folder``
of huggingface_hub 1.x and later resumes an interrupted upload when called again (committed files are skipped).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthgate.errors import IntegrityError, UsageError
from synthgate.release.bundle import PAYLOAD, PROVENANCE
from synthgate.release.verify import VerifyResult, verify_bundle
from synthgate.runtime import optional_import

logger = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PublishResult:
    """Where a bundle went."""

    repo_id: str
    url: str
    private: bool
    gated: str
    verification: VerifyResult


def _gating(payload: Path) -> str:
    try:
        prov = json.loads((payload / PROVENANCE).read_text(encoding="utf-8"))
        return str(prov["policy"]["access"]["gated"])
    except (OSError, ValueError, KeyError, TypeError):
        return "manual"


def publish_bundle(
    bundle: str | os.PathLike[str],
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    api: Any = None,
) -> PublishResult:
    """Verify ``bundle`` and upload its payload to the dataset repository ``repo_id``.

    Args:
        bundle: a bundle written by :func:`synthgate.release.bundle.build_release`.
        repo_id: ``ORG/NAME`` on the Hugging Face Hub.
        private: create the repository private.
        token: a Hub token (default: the logged-in user's).
        api: an ``HfApi``-like object (tests pass a fake).

    Raises:
        UsageError: a malformed ``repo_id``.
        IntegrityError: the bundle does not verify (nothing is uploaded).
    """
    if not _REPO_ID.match(repo_id):
        raise UsageError(f"--repo-id {repo_id!r}: expected ORG/NAME (letters, digits, '.', '_', '-')")
    result = verify_bundle(bundle)
    if not result.ok:
        reasons = "; ".join(f"{c.name}: {c.detail}" for c in result.failed)
        raise IntegrityError(f"{bundle} does not verify, refusing to publish: {reasons}")
    if api is None:
        HfApi = optional_import("huggingface_hub").HfApi
        api = HfApi(token=token)
    payload = Path(bundle) / PAYLOAD
    gated = _gating(payload)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(payload),
        repo_type="dataset",
        commit_message=f"synthgate release of {result.n_images} synthetic images",
    )
    if gated in ("auto", "manual"):
        api.update_repo_settings(repo_id, gated=gated, repo_type="dataset")
    logger.info("published %s to %s", bundle, repo_id)
    return PublishResult(repo_id=repo_id, url=str(url), private=private, gated=gated, verification=result)
