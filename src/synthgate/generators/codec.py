"""Map a set's channels to the generator's value range and back.

Image channels in [0, 1] become [-1, 1]. The label channel holds integer label values (e.g. 0, 1, 2, 4); it is
encoded as evenly spaced levels in [-1, 1] (value index k of K -> ``2k/(K-1) - 1``) so the network
generates it as one continuous channel, and decoded to the nearest level, hence always to a valid label value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from synthgate.errors import InputError


@dataclass(frozen=True)
class ChannelCodec:
    """Encode/decode between a set's values and the generator's [-1, 1] range.

    Attributes:
        label_channel: index of the label channel, or ``None``.
        label_values: the valid label values, sorted (empty without a label channel).
    """

    label_channel: int | None
    label_values: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.label_channel is not None and len(self.label_values) < 2:
            raise InputError(f"the label channel needs at least 2 label values, got {list(self.label_values)}")
        if list(self.label_values) != sorted(set(self.label_values)):
            raise InputError(f"label values must be sorted and distinct, got {list(self.label_values)}")

    @property
    def levels(self) -> np.ndarray:
        """The encoded level of each label value."""
        k = len(self.label_values)
        return np.linspace(-1.0, 1.0, k) if k else np.zeros(0)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """N x C x H x W set values -> float32 generator values in [-1, 1].

        Raises:
            InputError: the label channel holds a value outside ``label_values``.
        """
        out = np.asarray(images, dtype=np.float32) * 2.0 - 1.0
        if self.label_channel is not None:
            lab = np.rint(np.asarray(images[:, self.label_channel], dtype=np.float64)).astype(np.int64)
            values = np.asarray(self.label_values, dtype=np.int64)
            idx = np.searchsorted(values, lab)
            idx = np.clip(idx, 0, len(values) - 1)
            if not np.all(values[idx] == lab):
                bad = sorted(set(np.unique(lab).tolist()) - set(self.label_values))
                raise InputError(
                    f"label channel holds values {bad[:5]} outside the label map {list(self.label_values)}"
                )
            out[:, self.label_channel] = self.levels[idx].astype(np.float32)
        return out

    def decode(self, x: np.ndarray) -> np.ndarray:
        """Generator values -> set values: images clipped to [0, 1], labels snapped to the nearest value."""
        x = np.asarray(x, dtype=np.float32)
        out = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
        if self.label_channel is not None:
            k = len(self.label_values)
            idx = np.clip(np.rint((x[:, self.label_channel] + 1.0) / 2.0 * (k - 1)), 0, k - 1).astype(np.int64)
            out[:, self.label_channel] = np.asarray(self.label_values, dtype=np.float32)[idx]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"label_channel": self.label_channel, "label_values": list(self.label_values)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChannelCodec:
        return cls(label_channel=data["label_channel"], label_values=tuple(int(v) for v in data["label_values"]))
