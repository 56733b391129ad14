"""Map a set's channels to the generator's value range and back.

Image channels in [0, 1] become [-1, 1]. The label channel holds integer label values (e.g. 0, 1, 2, 4); it is
encoded as one continuous channel with a level per label value, and decoded to the nearest level, hence
always to a valid label value. Background sits at -1 and the tumour labels at evenly spaced levels in [0, 1],
so background noise needs a large error to become tumour. The tumour labels are ordered from the outer to the
inner region (oedema, then the core labels, then enhancing tumour: by how many BraTS regions hold them), so
a smooth transition from background into the core crosses oedema, as in real tumours, not an unrelated label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from synthgate.data.labels import LabelMap
from synthgate.errors import InputError


def encoding_order(label_map: LabelMap) -> tuple[int, ...]:
    """Label values in encoding order: background first, then by nesting depth (regions holding the value)."""
    depth = {v: sum(v in vals for vals in label_map.regions.values()) for v in label_map.values}
    return tuple(sorted(label_map.values, key=lambda v: (v != 0, depth[v], v)))


@dataclass(frozen=True)
class ChannelCodec:
    """Encode/decode between a set's values and the generator's [-1, 1] range.

    Attributes:
        label_channel: index of the label channel, or ``None``.
        label_values: the valid label values in encoding order, background (the first) at -1.
    """

    label_channel: int | None
    label_values: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.label_channel is not None and len(self.label_values) < 2:
            raise InputError(f"the label channel needs at least 2 label values, got {list(self.label_values)}")
        if len(set(self.label_values)) != len(self.label_values):
            raise InputError(f"label values must be distinct, got {list(self.label_values)}")

    @property
    def levels(self) -> np.ndarray:
        """The encoded level of each label value (in ``label_values`` order)."""
        k = len(self.label_values)
        if k == 0:
            return np.zeros(0)
        if k == 2:
            return np.array([-1.0, 1.0])
        return np.concatenate([[-1.0], np.linspace(0.0, 1.0, k - 1)])

    def encode(self, images: np.ndarray) -> np.ndarray:
        """N x C x H x W set values -> float32 generator values in [-1, 1].

        Raises:
            InputError: the label channel holds a value outside ``label_values``.
        """
        out = np.asarray(images, dtype=np.float32) * 2.0 - 1.0
        if self.label_channel is not None:
            lab = np.rint(np.asarray(images[:, self.label_channel], dtype=np.float64)).astype(np.int64)
            bad = sorted(set(np.unique(lab).tolist()) - set(self.label_values))
            if bad:
                raise InputError(
                    f"label channel holds values {bad[:5]} outside the label map {sorted(self.label_values)}"
                )
            lut = np.zeros(max(self.label_values) - min(self.label_values) + 1, dtype=np.float32)
            for v, level in zip(self.label_values, self.levels, strict=True):
                lut[v - min(self.label_values)] = level
            out[:, self.label_channel] = lut[lab - min(self.label_values)]
        return out

    def decode(self, x: np.ndarray) -> np.ndarray:
        """Generator values -> set values: images clipped to [0, 1], labels snapped to the nearest level."""
        x = np.asarray(x, dtype=np.float32)
        out = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
        if self.label_channel is not None:
            levels = self.levels.astype(np.float32)
            bounds = (levels[1:] + levels[:-1]) / 2
            idx = np.searchsorted(bounds, x[:, self.label_channel])
            out[:, self.label_channel] = np.asarray(self.label_values, dtype=np.float32)[idx]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"label_channel": self.label_channel, "label_values": list(self.label_values)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChannelCodec:
        values = tuple(int(v) for v in data["label_values"])
        return cls(label_channel=data["label_channel"], label_values=values)
