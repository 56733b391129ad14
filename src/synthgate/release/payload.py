"""The released images in the form every writer takes: opaque ids, image channels, integer labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synthgate.data.geometry import Geometry
from synthgate.data.imageset import ImageSet
from synthgate.data.labels import LabelMap
from synthgate.errors import InputError


@dataclass(frozen=True, eq=False)
class ReleaseImages:
    """Images as they leave synthgate.

    Attributes:
        ids: opaque ids ``case_0000``, ``case_0001``, ... (never the store's ids).
        images: N x C x H x W float32, the image channels only.
        labels: N x H x W uint8 label values of ``label_map``'s convention, or ``None``.
        seeds: per-image generator seed (-1 where unknown).
        channels: names of the image channels.
        label_map: meaning of the label values, or ``None``.
        geometry: pixel spacing and anatomical axes of the images (from the set's meta).
    """

    ids: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray | None
    seeds: np.ndarray
    channels: tuple[str, ...]
    label_map: LabelMap | None
    geometry: Geometry

    def __len__(self) -> int:
        return len(self.ids)


def opaque_id(i: int) -> str:
    """The public id of the ``i``-th released image."""
    return f"case_{i:04d}"


def release_images(s: ImageSet, keep: Sequence[int], name: str = "--synthetic") -> ReleaseImages:
    """Select ``keep`` from ``s`` and convert to the public form.

    Raises:
        InputError: the label channel holds values outside the set's label map.
    """
    idx = np.asarray(keep, dtype=np.int64)
    block = s.read_rows(idx)
    img_ch = list(s.image_channels)
    images = np.ascontiguousarray(block[:, img_ch])
    labels = None
    if s.label_channel is not None:
        raw = block[:, s.label_channel]
        labels_i = np.rint(raw).astype(np.int64)
        if s.label_map is not None:
            bad = np.setdiff1d(np.unique(labels_i), np.asarray(s.label_map.values))
            if bad.size:
                raise InputError(
                    f"{name}: label values {bad.tolist()} are not in the {s.label_map.convention} label map; "
                    "sample the generator again (labels must be snapped to valid values)"
                )
        if labels_i.size and (labels_i.min() < 0 or labels_i.max() > 255):
            raise InputError(f"{name}: label values must be within 0..255")
        labels = labels_i.astype(np.uint8)
    seeds = np.asarray(s.seeds, dtype=np.int64)[idx] if s.seeds is not None else np.full(len(idx), -1)
    return ReleaseImages(
        ids=tuple(opaque_id(i) for i in range(len(idx))),
        images=images,
        labels=labels,
        seeds=seeds,
        channels=tuple(s.channels[i] for i in img_ch),
        label_map=s.label_map,
        geometry=Geometry.from_meta(s.meta),
    )
