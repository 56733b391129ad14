"""Image sets as segmentation data: image channels in, one binary target per BraTS region out.

The target of an image is three masks, WT, TC and ET, computed from the set's own label map
(:meth:`synthgate.data.labels.LabelMap.region_mask`), so sets with different label conventions (BRATS 2013,
BraTS 2021, BraTS 2023) train and test together. Batches are read on demand, so a memory-mapped store is
never loaded whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from synthgate.data.imageset import ImageSet, check_compatible, require_nonempty
from synthgate.data.labels import REGIONS, LabelMap, check_label_values
from synthgate.errors import InputError


def region_targets(s: ImageSet, index: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
    """Binary WT/TC/ET masks (len x 3 x H x W, uint8) of the images at ``index`` (all when ``None``)."""
    if s.label_channel is None or s.label_map is None:
        raise InputError("the set has no label channel; the utility audit needs labelled images")
    idx = np.arange(len(s)) if index is None else np.asarray(index, dtype=np.int64)
    return targets_from_labels(np.asarray(s.images[idx, s.label_channel], dtype=np.float32), s.label_map)


def targets_from_labels(labels: np.ndarray, label_map: LabelMap) -> np.ndarray:
    """Binary WT/TC/ET masks (N x 3 x H x W, uint8) of an N x H x W label array."""
    return np.stack([label_map.region_mask(labels, r) for r in REGIONS], axis=1).astype(np.uint8)


def check_labelled(s: ImageSet, name: str, block_size: int = 512, scan: bool = True) -> None:
    """Raise :class:`InputError` unless ``s`` is non-empty, labelled, and (with ``scan``) its labels fit its
    label map."""
    require_nonempty(s, name)
    if s.label_channel is None or s.label_map is None:
        raise InputError(
            f"{name} has no label channel (channels {list(s.channels)}); the utility audit trains "
            "segmentation and needs the tumour label as a channel: ingest with labels or sample a generator "
            "with labels"
        )
    if not s.image_channels:
        raise InputError(f"{name} holds only the label channel; it needs at least one image channel")
    for start in range(0, len(s) if scan else 0, block_size):
        block = np.asarray(s.images[start : start + block_size, s.label_channel], dtype=np.float32)
        check_label_values(block, s.label_map, f"{name} (images {start}..{start + len(block) - 1})")


@dataclass(frozen=True, eq=False)
class SegmentationData:
    """One or more labelled image sets seen as one indexable segmentation set.

    Attributes:
        sets: the sets, compatible in channels and size.
        names: a short name per set (``"synthetic"``, ``"real-train"``), used in messages.
        check_labels: scan every label value against the label map (a pass over the label channel; callers that
            already checked the sets pass ``False``).
    """

    sets: tuple[ImageSet, ...]
    names: tuple[str, ...]
    check_labels: bool = True
    _offsets: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.sets or len(self.sets) != len(self.names):
            raise InputError("SegmentationData needs one name per set and at least one set")
        for s, name in zip(self.sets, self.names, strict=True):
            check_labelled(s, name, scan=self.check_labels)
        for s, name in zip(self.sets[1:], self.names[1:], strict=True):
            check_compatible(self.sets[0], s, self.names[0], name)
        object.__setattr__(self, "_offsets", np.cumsum([0] + [len(s) for s in self.sets]))

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def in_channels(self) -> int:
        return len(self.sets[0].image_channels)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        _, h, w = self.sets[0].shape
        return h, w

    @property
    def subjects(self) -> tuple[str, ...]:
        """Subject of every image, prefixed by its set's name so subjects of different sets never merge."""
        return tuple(f"{name}:{sub}" for s, name in zip(self.sets, self.names, strict=True) for sub in s.subjects)

    def batch(self, index: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Images (len x C' x H x W float32, label channel dropped) and targets (len x 3 x H x W float32)."""
        idx = np.asarray(index, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} images")
        which = np.searchsorted(self._offsets, idx, side="right") - 1
        xs = np.empty((len(idx), self.in_channels, *self.size), dtype=np.float32)
        ys = np.empty((len(idx), len(REGIONS), *self.size), dtype=np.float32)
        for k, s in enumerate(self.sets):
            pos = np.flatnonzero(which == k)
            if not pos.size:
                continue
            local = idx[pos] - self._offsets[k]
            order = np.argsort(local, kind="stable")  # sorted reads are faster on a memory map
            rows = s.read_rows(local[order])
            xs[pos[order]] = rows[:, list(s.image_channels)]
            assert s.label_channel is not None and s.label_map is not None  # checked in __post_init__
            ys[pos[order]] = targets_from_labels(rows[:, s.label_channel], s.label_map)
        return xs, ys
