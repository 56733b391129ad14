"""Tumour label conventions and the BraTS evaluation regions.

The label channel of a set keeps the label values of its source convention; ``LabelMap`` records what each
value means and which values make up the three regions BraTS evaluates:

* whole tumour (WT): every tumour label;
* tumour core (TC): necrosis, non-enhancing tumour and enhancing tumour (not oedema);
* enhancing tumour (ET).

| convention | 1 | 2 | 3 | 4 |
|---|---|---|---|---|
| ``brats2021`` (BraTS 2017-2021, phantom) | necrosis / non-enhancing | oedema | - | enhancing |
| ``brats2023`` | necrosis / non-enhancing | oedema | enhancing | - |
| ``brats2013`` | necrosis | oedema | non-enhancing | enhancing |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from synthgate.errors import InputError


class Region(StrEnum):
    """BraTS evaluation regions."""

    WT = "WT"
    TC = "TC"
    ET = "ET"


REGIONS: tuple[str, ...] = tuple(str(r) for r in Region)  # the order of every per-region table and output

class LabelConvention(StrEnum):
    """Known label conventions."""

    BRATS2021 = "brats2021"
    BRATS2023 = "brats2023"
    BRATS2013 = "brats2013"


@dataclass(frozen=True)
class LabelMap:
    """What each label value means and which values form each BraTS region."""

    convention: str
    names: Mapping[int, str]
    regions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if 0 not in self.names:
            raise InputError(f"label map {self.convention!r} must name value 0 (background)")
        for region, values in self.regions.items():
            unknown = set(values) - set(self.names)
            if unknown:
                raise InputError(
                    f"label map {self.convention!r}: region {region} uses unknown values {sorted(unknown)}"
                )

    @property
    def values(self) -> tuple[int, ...]:
        """The valid label values, sorted."""
        return tuple(sorted(self.names))

    def region_mask(self, labels: np.ndarray, region: str | Region) -> np.ndarray:
        """Boolean mask of ``region`` in an integer label array of any shape."""
        values = self.regions[str(region)]
        return np.isin(np.rint(labels).astype(np.int64), np.asarray(values, dtype=np.int64))

    def to_json(self) -> dict[str, Any]:
        return {
            "convention": self.convention,
            "names": {str(k): v for k, v in sorted(self.names.items())},
            "regions": {k: list(v) for k, v in self.regions.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelMap:
        return cls(
            convention=str(data["convention"]),
            names={int(k): str(v) for k, v in data["names"].items()},
            regions={str(k): tuple(int(x) for x in v) for k, v in data.get("regions", {}).items()},
        )


BRATS2021 = LabelMap(
    convention=LabelConvention.BRATS2021,
    names={0: "background", 1: "necrosis/non-enhancing tumour", 2: "oedema", 4: "enhancing tumour"},
    regions={"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)},
)
BRATS2023 = LabelMap(
    convention=LabelConvention.BRATS2023,
    names={0: "background", 1: "necrosis/non-enhancing tumour", 2: "oedema", 3: "enhancing tumour"},
    regions={"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)},
)
BRATS2013 = LabelMap(
    convention=LabelConvention.BRATS2013,
    names={0: "background", 1: "necrosis", 2: "oedema", 3: "non-enhancing tumour", 4: "enhancing tumour"},
    regions={"WT": (1, 2, 3, 4), "TC": (1, 3, 4), "ET": (4,)},
)

LABEL_MAPS: dict[str, LabelMap] = {m.convention: m for m in (BRATS2021, BRATS2023, BRATS2013)}


def label_map_for(convention: str | LabelConvention) -> LabelMap:
    """The label map of a named convention."""
    try:
        return LABEL_MAPS[str(convention)]
    except KeyError:
        raise InputError(
            f"unknown label convention {convention!r}; use one of {', '.join(LABEL_MAPS)}"
        ) from None


def check_label_values(labels: np.ndarray, label_map: LabelMap, where: str) -> None:
    """Raise if ``labels`` holds values outside ``label_map`` (non-integers included)."""
    values = np.unique(labels)
    rounded = np.rint(values)
    bad = values[(np.abs(values - rounded) > 1e-3) | ~np.isin(rounded, label_map.values)]
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:5])
        raise InputError(
            f"{where}: label values {shown} are not in the {label_map.convention} label map "
            f"{list(label_map.values)}; pass the right --labels convention or fix the label file"
        )
