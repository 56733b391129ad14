"""``provenance.json``: what made the release (versions, hashes, seeds, settings), with no path or real id."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthgate import __version__
from synthgate.data.imageset import ImageSet
from synthgate.data.manifest import set_manifest
from synthgate.release.policy import ReleasePolicy
from synthgate.runtime import versions

LIBRARIES = (
    "numpy",
    "torch",
    "monai",
    "faiss-cpu",
    "nibabel",
    "datasets",
    "pyarrow",
    "huggingface_hub",
    "bagit",
)
_PATHISH = re.compile(r"[/\\]|\.nii(\.gz)?$|\.npy$|\.png$", re.IGNORECASE)
_PRIVATE_KEYS = ("path", "dir", "file", "root", "cohort", "subject", "ids")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a release depends on (``None`` when absent)."""
    return versions(*LIBRARIES)


def manifest_hash(s: ImageSet) -> str:
    """The set digest of :mod:`synthgate.data.manifest` (ids and image content): names a training set exactly."""
    return "sha256:" + set_manifest(s).digest


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def scrub(value: Any) -> Any:
    """Drop keys that name paths, files or subjects, and strings that look like paths (recursively)."""
    if isinstance(value, Mapping):
        return {
            str(k): scrub(v)
            for k, v in value.items()
            if not any(p in str(k).lower() for p in _PRIVATE_KEYS) or str(k).lower().endswith(("sha256", "hash"))
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str) and _PATHISH.search(value):
        return "<redacted path>"
    return value


def run_hashes(generator: Mapping[str, Any]) -> dict[str, str]:
    """SHA-256 of the generator run's checkpoint and training-image list, when its run folder is here."""
    run = generator.get("run") or generator.get("run_dir")
    out: dict[str, str] = {}
    if not isinstance(run, str) or not Path(run).is_dir():
        return out
    for key, name in (("checkpoint_sha256", "checkpoint.pt"), ("training_list_sha256", "training_images.csv")):
        if (Path(run) / name).is_file():
            out[key] = file_hash(Path(run) / name)
    return out


def build_provenance(
    synthetic: ImageSet,
    audit_summary: Mapping[str, Any],
    utility: Mapping[str, Any] | None,
    policy: ReleasePolicy,
    train_manifest: str | None = None,
) -> dict[str, Any]:
    """The provenance record of a release (scrubbed of paths and ids)."""
    generator = synthetic.meta.get("generator") or {}
    seeds = [int(x) for x in synthetic.seeds] if synthetic.seeds is not None else []
    manifest = train_manifest
    if manifest is None:
        for src in (generator, audit_summary.get("settings") or {}, synthetic.meta.get("ingest") or {}):
            for key in ("train_manifest", "train_manifest_sha256", "training_manifest_hash", "manifest_hash"):
                if isinstance(src, Mapping) and src.get(key):
                    manifest = str(src[key])
                    break
            if manifest:
                break
    return {
        "synthgate_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "training_set": {"manifest_hash": manifest or "unknown (pass --train to record it)"},
        "generator": {**scrub(generator), **run_hashes(generator)},
        "synthetic_set": {
            "count_audited": len(synthetic),
            "channels": list(synthetic.channels),
            "shape": list(synthetic.shape),
            "seeds": {
                "min": min(seeds) if seeds else None,
                "max": max(seeds) if seeds else None,
                "count": len(seeds),
            },
        },
        "audit": {
            "synthgate_version": audit_summary.get("synthgate_version"),
            "threshold": audit_summary.get("threshold"),
            "calibration": scrub(audit_summary.get("calibration") or {}),
            "settings": scrub(audit_summary.get("settings") or {}),
            "versions": scrub(audit_summary.get("versions") or {}),
        },
        "utility": None
        if utility is None
        else {
            "synthgate_version": utility.get("synthgate_version"),
            "net": utility.get("net"),
            "seeds": utility.get("seeds"),
            "epochs": utility.get("epochs"),
            "config": scrub(utility.get("config") or {}),
            "versions": scrub(utility.get("versions") or {}),
        },
        "policy": policy.to_json(),
    }
