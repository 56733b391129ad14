"""The image set: N x C x H x W images with ids, subjects, channel names and an optional label channel."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from synthgate.data.blockio import read_blocks, read_rows
from synthgate.data.labels import LabelMap
from synthgate.errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    """A file a reader skipped under ``on_error="skip"``, and why."""

    path: str
    reason: str


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A set of 2D multi-channel images.

    Attributes:
        images: N x C x H x W float array (float32 or float16; may be a read-only memory map).
        ids: one unique id per image.
        subjects: the subject each image comes from (the unit of splitting and of leakage accounting).
        channels: channel names, e.g. ``("t1", "t1c", "t2", "flair", "label")``.
        label_channel: index of the tumour-label channel, or ``None``.
        label_map: meaning of the label values (``None`` without a label channel).
        slice_index: axial slice each image was cut from (-1 where unknown).
        seeds: per-sample generator seed (-1 where not generated).
        sources: short provenance tag per image (e.g. ``"real"``, ``"diffusion"``).
        meta: free metadata carried through the store (normalisation, spacing, ...).
        skipped: files a reader skipped with ``on_error="skip"``.
    """

    images: np.ndarray
    ids: tuple[str, ...]
    subjects: tuple[str, ...]
    channels: tuple[str, ...]
    label_channel: int | None = None
    label_map: LabelMap | None = None
    slice_index: np.ndarray | None = None
    seeds: np.ndarray | None = None
    sources: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise InputError(f"images must be N x C x H x W, got shape {self.images.shape}")
        n, c = self.images.shape[:2]
        if len(self.ids) != n or len(self.subjects) != n:
            raise InputError(f"{n} images but {len(self.ids)} ids and {len(self.subjects)} subjects")
        if len(self.channels) != c:
            raise InputError(f"{c} channels in the images but {len(self.channels)} channel names")
        if self.label_channel is not None and not 0 <= self.label_channel < c:
            raise InputError(f"label channel {self.label_channel} out of range for {c} channels")
        if len(set(self.ids)) != n:
            dup = next(i for i, count in Counter(self.ids).items() if count > 1)
            raise InputError(f"duplicate image id {dup!r}; ids must be unique within a set")
        for name in ("slice_index", "seeds"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise InputError(f"{name} has {len(arr)} entries for {n} images")
        if self.sources is not None and len(self.sources) != n:
            raise InputError(f"sources has {len(self.sources)} entries for {n} images")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of each image."""
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    @property
    def image_channels(self) -> tuple[int, ...]:
        """Indices of the channels that are images (every channel but the label)."""
        return tuple(i for i in range(len(self.channels)) if i != self.label_channel)

    @property
    def subject_ids(self) -> tuple[str, ...]:
        """Distinct subjects in first-seen order."""
        return tuple(dict.fromkeys(self.subjects))

    def iter_blocks(self, block_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, block)`` with at most ``block_size`` images each, as float32 copies.

        A memory-mapped store is read with plain file reads, so only the current block is resident.
        """
        if block_size < 1:
            raise InputError(f"block_size must be >= 1, got {block_size}")
        yield from read_blocks(self.images, block_size)

    def read_rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The images at ``rows`` (in that order) as a new float32 array, read without touching a memory map."""
        return read_rows(self.images, rows)

    def row_range(self, start: int, stop: int) -> ImageSet:
        """The images ``start .. stop`` as a view (no copy: a memory-mapped store is still read block by block)."""
        sl = slice(start, stop)
        return replace(
            self,
            images=self.images[sl],
            ids=self.ids[sl],
            subjects=self.subjects[sl],
            slice_index=None if self.slice_index is None else np.asarray(self.slice_index)[sl],
            seeds=None if self.seeds is None else np.asarray(self.seeds)[sl],
            sources=None if self.sources is None else self.sources[sl],
            skipped=(),
        )

    def subset(self, index: Sequence[int] | np.ndarray) -> ImageSet:
        """A new in-memory set holding the images at ``index`` (in that order)."""
        idx = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            images=np.ascontiguousarray(self.images[idx]),
            ids=tuple(self.ids[i] for i in idx),
            subjects=tuple(self.subjects[i] for i in idx),
            slice_index=None if self.slice_index is None else np.asarray(self.slice_index)[idx],
            seeds=None if self.seeds is None else np.asarray(self.seeds)[idx],
            sources=None if self.sources is None else tuple(self.sources[i] for i in idx),
            skipped=(),
        )

    def select_subjects(self, subjects: Sequence[str]) -> ImageSet:
        """The images of the given subjects."""
        wanted = set(subjects)
        return self.subset([i for i, s in enumerate(self.subjects) if s in wanted])


def check_compatible(a: ImageSet, b: ImageSet, name_a: str, name_b: str) -> None:
    """Raise :class:`InputError` naming both sets if they disagree on channels or image size."""
    if a.channels != b.channels:
        raise InputError(
            f"{name_a} has channels {list(a.channels)} but {name_b} has {list(b.channels)}; "
            "sets used together must have the same channels"
        )
    if a.shape[1:] != b.shape[1:]:
        raise InputError(
            f"{name_a} has images of {a.shape[1]}x{a.shape[2]} but {name_b} has {b.shape[1]}x{b.shape[2]}; "
            "ingest both with the same --size"
        )
    if a.label_channel != b.label_channel:
        raise InputError(
            f"{name_a} has its label in channel {a.label_channel} but {name_b} in channel {b.label_channel}"
        )


def unnamed_channels(s: ImageSet) -> bool:
    """True if the channels carry only the placeholder names a folder reader gives (``c0``, ``c1``, ...)."""
    return s.channels == tuple(f"c{i}" for i in range(len(s.channels)))


def name_channels(s: ImageSet, names: Sequence[str], name: str) -> ImageSet:
    """``s`` with its channels named ``names`` in order; a channel named ``label`` becomes the label channel.

    Raises:
        InputError: a different number of names than channels.
    """
    if len(names) != len(s.channels):
        raise InputError(f"--channels names {len(names)} channel(s) ({','.join(names)}) but {name} has "
                         f"{len(s.channels)}; give one name per channel, in file order")
    label = names.index("label") if "label" in names else None
    return replace(s, channels=tuple(names), label_channel=label, label_map=s.label_map if label is not None else None)


def conform_to(s: ImageSet, ref: ImageSet, name: str, ref_name: str) -> ImageSet:
    """``s`` with what a folder of images cannot say taken from the set it is compared with.

    * Unnamed channels (``c0``...) get ``ref``'s names by position when the counts agree, with a warning that
      says so (``--channels`` names them explicitly and silences it).
    * A label channel in the same place as ``ref``'s, without a label map, gets ``ref``'s label map.
    * No recorded geometry and images of ``ref``'s size: ``ref``'s pixel spacing and axes.

    A set that already disagrees with ``ref`` is returned unchanged, for :func:`check_compatible` to report.
    """
    out = s
    if unnamed_channels(s) and not unnamed_channels(ref) and len(s.channels) == len(ref.channels):
        logger.warning("%s: its %d channels have no names; matched to %s's %s by position (pass --channels %s to "
                       "name them)", name, len(s.channels), ref_name, ",".join(ref.channels), ",".join(ref.channels))
        out = replace(out, channels=ref.channels, label_channel=ref.label_channel)
    if out.channels == ref.channels and out.label_channel == ref.label_channel and out.label_map is None:
        out = replace(out, label_map=ref.label_map)
    if "orientation" not in out.meta and "orientation" in ref.meta and out.shape[1:] == ref.shape[1:]:
        geometry = {"spacing": ref.meta.get("spacing"), "orientation": ref.meta["orientation"]}
        out = replace(out, meta={**out.meta, **geometry})
    return out


def require_nonempty(s: ImageSet, name: str) -> None:
    """Raise :class:`InputError` if the set has no image."""
    if len(s) == 0:
        raise InputError(f"{name} is empty: it holds no image; check the path and the ingest settings")
