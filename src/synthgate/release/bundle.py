"""``release build``: evaluate the gate and, on a pass, write the release bundle (a BagIt bag) atomically.

Bag layout (BagIt 1.0, RFC 8493; ``bagit`` writes version 0.97 tag files, and :func:`_make_bag` declares 1.0,
which the payload meets: sha256 manifests, UTF-8 tag files, and file names free of the CR, LF and ``%`` that
1.0 encodes differently)::

    BUNDLE/bagit.txt, bag-info.txt, manifest-sha256.txt, tagmanifest-sha256.txt
    BUNDLE/data/README.md                    dataset card (Hugging Face YAML + body)
    BUNDLE/data/data/train-XXXXX-of-YYYYY.parquet
    BUNDLE/data/nnunet/Dataset001_synthgate/{imagesTr,labelsTr,dataset.json}
    BUNDLE/data/provenance.json
    BUNDLE/data/release_report.{html,json}   PUBLIC report
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from synthgate import __version__
from synthgate.atomic import atomic_dir, check_target
from synthgate.data.imageset import ImageSet, require_nonempty
from synthgate.data.manifest import check_binding
from synthgate.errors import InputError, IntegrityError, UsageError
from synthgate.release.card import nnunet_dataset_json, render_card
from synthgate.release.gate import GateDecision, ReleaseRefused, evaluate_gate
from synthgate.release.hf import write_parquet_shards
from synthgate.release.inputs import SUMMARY, UTILITY, read_audit, read_utility
from synthgate.release.nnunet import write_nnunet
from synthgate.release.payload import release_images
from synthgate.release.policy import ReleasePolicy
from synthgate.release.privacy import private_strings, scan_files
from synthgate.release.provenance import build_provenance, manifest_hash
from synthgate.release.report import report_html, report_json
from synthgate.runtime import optional_import

logger = logging.getLogger(__name__)

PAYLOAD = "data"
CARD = "README.md"
PROVENANCE = "provenance.json"
REPORT_JSON = "release_report.json"
REPORT_HTML = "release_report.html"
TEXT_ARTEFACTS = (CARD, PROVENANCE, REPORT_JSON, REPORT_HTML, "nnunet/Dataset001_synthgate/dataset.json")


@dataclass(frozen=True)
class BuildResult:
    """A written bundle and the gate decision that allowed it."""

    path: Path
    decision: GateDecision
    n_released: int
    report_html: Path
    report_json: Path


def build_release(
    synthetic: ImageSet,
    audit_dir: str | os.PathLike[str],
    utility_dir: str | os.PathLike[str] | None,
    policy: ReleasePolicy,
    out: str | os.PathLike[str],
    overwrite: bool = False,
    train: ImageSet | None = None,
    rows_per_shard: int = 1000,
    holdout: ImageSet | None = None,
    allow_real: bool = False,
) -> BuildResult:
    """Gate ``synthetic`` on its audits and write the bundle at ``out``.

    Args:
        synthetic: the audited synthetic set (the audit must cover exactly its ids).
        audit_dir: folder written by ``synthgate audit memorization``.
        utility_dir: folder written by ``synthgate audit utility``, or ``None``.
        policy: the release rules.
        out: bundle folder to create.
        overwrite: replace an existing ``out``.
        train: the training set: checked against the audit's record and its manifest hash recorded.
        rows_per_shard: rows per parquet shard.
        holdout: the holdout set, checked against the audit's record when given.
        allow_real: release rows that are real images (ingested from patients), stating it in the card and
            the public report; without it such a set is refused.

    Returns:
        The bundle path and the decision.

    Raises:
        ReleaseRefused: a policy check failed (exit 3); nothing is written.
        UsageError: ``out`` exists and ``overwrite`` is false.
        InputError: unreadable or mismatched audit files, or a set that is not the audited one.
        IntegrityError: a public artefact would name a private id (nothing is written).
    """
    out = Path(out)
    check_target(out, overwrite)
    if rows_per_shard < 1:
        raise UsageError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
    require_nonempty(synthetic, "--synthetic")
    audit = read_audit(audit_dir)
    utility = read_utility(utility_dir) if utility_dir is not None else None
    check_binding(audit.summary.get("binding"),
                  {"synthetic": ("--synthetic", synthetic), "train": ("--train", train),
                   "holdout": ("--holdout", holdout)}, str(audit.path / SUMMARY))
    if utility is not None:
        check_binding(utility.data.get("binding"), {"synthetic": ("--synthetic", synthetic)},
                      str(utility.path / UTILITY))
    decision = evaluate_gate(synthetic.ids, audit, utility, policy)
    if not decision.released:
        raise ReleaseRefused(decision)
    n_real = int(real_rows(synthetic)[list(decision.keep)].sum())
    if n_real and not allow_real:
        raise InputError(
            f"--synthetic: {n_real} of the {len(decision.keep)} images to release are real (ingested from "
            "patients, not generated); release a generator's sample, or pass --allow-real to release real "
            "images knowingly (the card and the report will say so)"
        )
    if n_real:
        decision = replace(decision, real_released=n_real, warnings=(*decision.warnings, (
            f"{n_real} of the {len(decision.keep)} released images are REAL patient images, not synthetic "
            "(released with --allow-real)"),))

    r = release_images(synthetic, decision.keep)
    private = private_strings(audit, utility, (train, holdout)) - set(r.ids)
    report = report_json(decision, audit, utility, policy)
    provenance = build_provenance(
        synthetic,
        audit.summary,
        None if utility is None else utility.data,
        policy,
        train_manifest=manifest_hash(train) if train is not None else None,
    )
    with atomic_dir(out, overwrite=overwrite) as tmp:
        info = write_parquet_shards(r, tmp, rows_per_shard=rows_per_shard)
        write_nnunet(r, tmp, nnunet_dataset_json(r, policy))
        (tmp / CARD).write_text(
            render_card(r, policy, decision, audit.summary, None if utility is None else utility.data, info),
            encoding="utf-8",
        )
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        (tmp / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (tmp / REPORT_HTML).write_text(report_html(report, audit, utility, private), encoding="utf-8")
        hits = scan_files([tmp / p for p in TEXT_ARTEFACTS if (tmp / p).is_file()], private)
        if hits:
            names = ", ".join(Path(k).name for k in hits)
            raise IntegrityError(
                f"refusing to write {out}: {names} would name {sum(map(len, hits.values()))} real id(s) or "
                "subject(s); remove ids from the generator metadata and rerun"
            )
        _make_bag(tmp)
    logger.info("wrote bundle %s with %d images", out, len(r))
    return BuildResult(
        path=out,
        decision=decision,
        n_released=len(r),
        report_html=out / PAYLOAD / REPORT_HTML,
        report_json=out / PAYLOAD / REPORT_JSON,
    )


BAGIT_VERSION = "1.0"


def real_rows(s: ImageSet) -> np.ndarray:
    """Rows that are real images: source ``real``, or the whole set when it was ingested and not generated."""
    n = len(s)
    if "ingest" in s.meta and "generator" not in s.meta:
        return np.ones(n, dtype=bool)
    if s.sources is None:
        return np.zeros(n, dtype=bool)
    return np.array([src.strip().lower() == "real" for src in s.sources], dtype=bool)


def _make_bag(folder: Path) -> None:
    """Turn ``folder`` into a BagIt 1.0 bag: bagit writes the manifests, then the declaration and tag manifest
    are rewritten for version 1.0 (bagit-python validates 1.0 bags but only writes 0.97)."""
    bagit = optional_import("bagit")
    bagit.make_bag(
        str(folder),
        bag_info={
            "Source-Organization": "synthgate",
            "External-Description": "Synthetic brain-tumour MRI released by the synthgate gate",
            "Synthgate-Version": __version__,
        },
        checksums=["sha256"],
    )
    (folder / "bagit.txt").write_text(
        f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    bagit.Bag(str(folder)).save()  # recomputes tagmanifest-sha256.txt over the new bagit.txt
