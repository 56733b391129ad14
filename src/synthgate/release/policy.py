"""The release policy: what a synthetic set must satisfy before it may be shared.

A policy is a TOML file (``synthgate release policy --init`` writes one with the defaults and their
meaning) read into a frozen :class:`ReleasePolicy`. Unknown keys are an error, so a typo never silently
loosens the gate.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from synthgate.atomic import atomic_write_text, check_target
from synthgate.data.labels import REGIONS
from synthgate.errors import InputError, UsageError


class Gating(StrEnum):
    """Hugging Face gated access: ``off``, ``auto`` (approved at once) or ``manual`` (by the owner)."""

    OFF = "off"
    AUTO = "auto"
    MANUAL = "manual"


@dataclass(frozen=True)
class ReleasePolicy:
    """The release gate's rules (the TOML template of :func:`policy_template` documents each one).

    Attributes:
        max_fraction_flagged: largest fraction of flagged images allowed in the released set (after removal).
        max_fraction_flagged_before_removal: largest fraction of flagged images in the audited set; above it
            the generator copies too often for removal to be trusted, and the release is refused.
        max_subjects_leaked: largest fraction of training subjects with at least one flagged copy.
        remove_flagged: drop flagged images from the release.
        removal_margin: also drop images scoring within this margin below the threshold.
        remove_zero_variance: drop blank (constant) synthetic images.
        require_holdout_calibration: the audit threshold must come from a holdout set.
        min_images: smallest number of images a release may hold.
        require_utility: a utility audit must exist and give a synthetic/real ratio for every region.
        min_utility_ratio: smallest synthetic/real Dice ratio per region.
        min_reference_dice: smallest mean Dice of the real-trained reference per region; below it the
            reference is too weak for the ratio to mean anything, and the release is refused.
        output_licence: SPDX-style licence of the released data.
        training_licence: licence of the training data.
        refuse_on_licence_conflict: refuse (rather than warn) when the output licence is more permissive than
            a non-commercial or share-alike training licence.
        training_dataset: name of the training data set (the card's ``source_datasets``).
        training_citation: how to cite the training data (card and ``dataset.json``).
        gated: Hugging Face gated access for ``publish``.
        dataset_name: the name used in the dataset card.
    """

    max_fraction_flagged: float = 0.0
    max_fraction_flagged_before_removal: float = 0.05
    max_subjects_leaked: float = 1.0
    remove_flagged: bool = True
    removal_margin: float = 0.0
    remove_zero_variance: bool = True
    require_holdout_calibration: bool = True
    min_images: int = 1
    require_utility: bool = True
    min_utility_ratio: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(REGIONS, 0.8))
    min_reference_dice: float = 0.3
    output_licence: str = "cc-by-nc-sa-4.0"
    training_licence: str = "cc-by-nc-sa-3.0"
    refuse_on_licence_conflict: bool = False
    training_dataset: str = ""
    training_citation: str = ""
    gated: Gating = Gating.MANUAL
    dataset_name: str = "synthgate synthetic brain-tumour MRI"

    def __post_init__(self) -> None:
        numbers = {n: getattr(self, n) for n in ("max_fraction_flagged", "max_fraction_flagged_before_removal",
                                                 "max_subjects_leaked", "removal_margin", "min_reference_dice")}
        numbers.update({f"min_utility_ratio.{k}": v for k, v in self.min_utility_ratio.items()})
        for name, v in numbers.items():  # NaN passes every comparison below, so it would switch a rule off
            if isinstance(v, int | float) and not math.isfinite(v):
                raise UsageError(f"policy {name} = {v}: must be a finite number")
        for name in ("max_fraction_flagged", "max_fraction_flagged_before_removal", "max_subjects_leaked"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise UsageError(f"policy {name} = {v}: must be a fraction in [0, 1]")
        if self.removal_margin < 0:
            raise UsageError(f"policy removal_margin = {self.removal_margin}: must be >= 0")
        if not 0.0 <= self.min_reference_dice <= 1.0:
            raise UsageError(f"policy min_reference_dice = {self.min_reference_dice}: must be in [0, 1]")
        if self.min_images < 1:
            raise UsageError(f"policy min_images = {self.min_images}: must be >= 1")
        for region, v in self.min_utility_ratio.items():
            if region not in REGIONS:
                raise UsageError(f"policy min_utility_ratio has unknown region {region!r}; use {', '.join(REGIONS)}")
            if v < 0:
                raise UsageError(f"policy min_utility_ratio.{region} = {v}: must be >= 0")
        for name in ("output_licence", "training_licence"):
            if not getattr(self, name).strip():
                raise UsageError(f"policy {name} is empty; give an SPDX licence id such as cc-by-4.0")
        object.__setattr__(self, "gated", Gating(self.gated))

    def to_json(self) -> dict[str, Any]:
        return {
            "memorization": {
                "max_fraction_flagged": self.max_fraction_flagged,
                "max_fraction_flagged_before_removal": self.max_fraction_flagged_before_removal,
                "max_subjects_leaked": self.max_subjects_leaked,
                "remove_flagged": self.remove_flagged,
                "removal_margin": self.removal_margin,
                "remove_zero_variance": self.remove_zero_variance,
                "require_holdout_calibration": self.require_holdout_calibration,
                "min_images": self.min_images,
            },
            "utility": {
                "require_utility": self.require_utility,
                "min_ratio": dict(self.min_utility_ratio),
                "min_reference_dice": self.min_reference_dice,
            },
            "licence": {
                "output": self.output_licence,
                "training_data": self.training_licence,
                "refuse_on_conflict": self.refuse_on_licence_conflict,
            },
            "source": {"dataset": self.training_dataset, "citation": self.training_citation},
            "access": {"gated": str(self.gated), "dataset_name": self.dataset_name},
        }


# TOML section -> {key in the file: attribute}
_SCHEMA: dict[str, dict[str, str]] = {
    "memorization": {
        "max_fraction_flagged": "max_fraction_flagged",
        "max_fraction_flagged_before_removal": "max_fraction_flagged_before_removal",
        "max_subjects_leaked": "max_subjects_leaked",
        "remove_flagged": "remove_flagged",
        "removal_margin": "removal_margin",
        "remove_zero_variance": "remove_zero_variance",
        "require_holdout_calibration": "require_holdout_calibration",
        "min_images": "min_images",
    },
    "utility": {
        "require_utility": "require_utility",
        "min_ratio": "min_utility_ratio",
        "min_reference_dice": "min_reference_dice",
    },
    "licence": {
        "output": "output_licence",
        "training_data": "training_licence",
        "refuse_on_conflict": "refuse_on_licence_conflict",
    },
    "source": {"dataset": "training_dataset", "citation": "training_citation"},
    "access": {"gated": "gated", "dataset_name": "dataset_name"},
}

_TYPES: dict[str, type | tuple[type, ...]] = {
    "max_fraction_flagged": (int, float),
    "max_fraction_flagged_before_removal": (int, float),
    "max_subjects_leaked": (int, float),
    "remove_flagged": bool,
    "removal_margin": (int, float),
    "remove_zero_variance": bool,
    "require_holdout_calibration": bool,
    "min_images": int,
    "require_utility": bool,
    "min_utility_ratio": dict,
    "min_reference_dice": (int, float),
    "output_licence": str,
    "training_licence": str,
    "refuse_on_licence_conflict": bool,
    "training_dataset": str,
    "training_citation": str,
    "gated": str,
    "dataset_name": str,
}


def policy_from_mapping(data: Mapping[str, Any], where: str = "policy") -> ReleasePolicy:
    """Build a policy from parsed TOML; every key is optional, unknown keys are an error."""
    kwargs: dict[str, Any] = {}
    for section, values in data.items():
        if section not in _SCHEMA:
            raise UsageError(f"{where}: unknown section [{section}]; known: {', '.join(_SCHEMA)}")
        if not isinstance(values, Mapping):
            raise UsageError(f"{where}: {section} must be a [table]")
        for key, value in values.items():
            attr = _SCHEMA[section].get(key)
            if attr is None:
                raise UsageError(f"{where}: unknown key {section}.{key}; known: {', '.join(_SCHEMA[section])}")
            expected = _TYPES[attr]
            wrong_bool = isinstance(value, bool) and expected in ((int, float), int)
            if wrong_bool or not isinstance(value, expected):
                raise UsageError(f"{where}: {section}.{key} = {value!r} has the wrong type")
            if attr == "min_utility_ratio":
                ratios: dict[str, Any] = dict(cast(Mapping[str, Any], value))
                if any(isinstance(v, bool) or not isinstance(v, int | float) for v in ratios.values()):
                    raise UsageError(f"{where}: utility.min_ratio values must be numbers, got {ratios!r}")
                value = {**dict.fromkeys(REGIONS, 0.8), **{str(k): float(v) for k, v in ratios.items()}}
            if attr == "gated":
                try:
                    value = Gating(value)
                except ValueError:
                    raise UsageError(
                        f"{where}: access.gated = {value!r}; use one of {', '.join(g.value for g in Gating)}"
                    ) from None
            kwargs[attr] = float(value) if expected == (int, float) else value
    try:
        return ReleasePolicy(**kwargs)
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None


def load_policy(path: str | os.PathLike[str]) -> ReleasePolicy:
    """Read a policy TOML file.

    Raises:
        InputError: the file is missing or not valid TOML.
        UsageError: an unknown key or an invalid value.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--policy {p}: no such file; write one with 'synthgate release policy --init {p}'")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"--policy {p}: not valid TOML ({e})") from None
    return policy_from_mapping(data, where=str(p))


# Comment above each key of the template (the meaning of the rule, for the steward who edits the file).
_HELP: dict[str, str] = {
    "max_fraction_flagged": "Largest fraction of flagged images (score >= the audit threshold) left in the release, "
    "after removal.",
    "max_fraction_flagged_before_removal": "Largest fraction of flagged images in the audited set before removal. "
    "Above it the generator copies training images too often for removing the flagged ones to be trusted: the "
    "release is refused.",
    "max_subjects_leaked": "Largest fraction of training subjects with at least one flagged synthetic copy (1.0: no "
    "limit; flagged copies are removed anyway, lower it to refuse when copies spread over many subjects).",
    "remove_flagged": "Remove flagged images before release.",
    "removal_margin": "Also remove images whose score is within this margin below the threshold "
    "(score >= threshold - margin).",
    "remove_zero_variance": "Remove blank (constant) synthetic images.",
    "require_holdout_calibration": "The audit threshold must be calibrated on a holdout set of real subjects the "
    "generator never saw.",
    "min_images": "Smallest number of images a release may hold.",
    "require_utility": "A utility audit must exist and give a synthetic/real Dice ratio for every region. Set "
    "false to waive the utility checks (the report then shows them as waived).",
    "min_utility_ratio": "Smallest synthetic/real mean Dice ratio per BraTS region (whole tumour, tumour core, "
    "enhancing tumour).",
    "min_reference_dice": "Smallest mean Dice per region of the network trained on REAL images: below it the "
    "reference is too weak for the ratio to mean anything (e.g. too few epochs), and the release is refused.",
    "output_licence": "Licence of the released data (SPDX-style id, lower case, as Hugging Face writes them).",
    "training_licence": "Licence of the training data.",
    "refuse_on_licence_conflict": "A warning is given when the output licence is more permissive than a "
    "non-commercial (NC) or share-alike (SA) training licence; set true to refuse instead.",
    "training_dataset": "Name of the training data set (the dataset card lists it under source_datasets).",
    "training_citation": "How to cite the training data, as its licence asks (quoted in the dataset card and "
    "in dataset.json).",
    "gated": 'Hugging Face gated access on publish: "off", "auto" or "manual".',
    "dataset_name": "The name of the released data set (dataset card and dataset.json).",
}


def policy_template(policy: ReleasePolicy | None = None) -> str:
    """``policy`` (default: the defaults) as a commented TOML file, written by tomlkit (strings quoted safely)."""
    import textwrap

    import tomlkit

    d = policy or ReleasePolicy()
    doc = tomlkit.document()
    doc.add(tomlkit.comment("synthgate release policy. Every key is optional; a missing key takes its default"))
    doc.add(tomlkit.comment("('synthgate release policy --init FILE' writes the defaults)."))
    for section, keys in _SCHEMA.items():
        table = tomlkit.table()
        for key, attr in keys.items():
            for line in textwrap.wrap(_HELP[attr], 110):
                table.add(tomlkit.comment(line))
            value = getattr(d, attr)
            if isinstance(value, StrEnum):
                value = str(value)
            elif isinstance(value, Mapping):
                inline = tomlkit.inline_table()
                inline.update({k: float(v) for k, v in value.items()})
                value = inline
            table.add(key, value)
        doc.add(tomlkit.nl())
        doc.add(section, table)
    return tomlkit.dumps(doc)


def write_policy_template(
    path: str | os.PathLike[str], overwrite: bool = False, policy: ReleasePolicy | None = None
) -> Path:
    """Write :func:`policy_template` to ``path`` atomically; refuses an existing file without ``overwrite``."""
    p = Path(path)
    check_target(p, overwrite, option="path")
    atomic_write_text(p, policy_template(policy))
    return p
