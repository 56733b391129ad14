"""Dice per subject, as in the study: 2D predictions stacked back into per-subject volumes.

Dice of a region in one subject is ``2 |P ∩ G| / (|P| + |G|)`` over the subject's volume (its slices
restacked by ``slice_index``); when both ``P`` and ``G`` are empty it is 1 (the BraTS challenge convention: no
tumour predicted where there is none is right), and when only one is empty it is 0.

Dice over a volume only needs three counts per subject and region, so :class:`DiceAccumulator` streams batches
of slices and never holds a volume; :func:`stack_volumes` and :func:`volume_dice` build the volumes explicitly
and are the reference the accumulator is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from synthgate.data.imageset import ImageSet
from synthgate.data.labels import REGIONS
from synthgate.errors import InputError
from synthgate.runtime import Progress
from synthgate.segment.data import SegmentationData

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class SubjectDice:
    """Dice of one subject for WT, TC and ET, and the voxel counts of its ground truth."""

    subject: str
    dice: dict[str, float]
    true_voxels: dict[str, int]
    slices: int


def dice_from_counts(intersection: np.ndarray, pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Dice from voxel counts (any shape, elementwise); 1 where prediction and truth are both empty."""
    intersection, pred, true = (np.asarray(a, dtype=np.float64) for a in (intersection, pred, true))
    denom = pred + true
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * intersection / np.where(denom > 0, denom, 1.0), 1.0)


def volume_dice(pred: np.ndarray, true: np.ndarray) -> float:
    """Dice of two binary arrays of the same shape (reference implementation)."""
    if pred.shape != true.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground truth {true.shape}")
    p, t = pred.astype(bool), true.astype(bool)
    return float(dice_from_counts(np.sum(p & t), np.sum(p), np.sum(t)))


def check_slice_order(subjects: Sequence[str], slice_index: np.ndarray | None, name: str) -> None:
    """Raise :class:`InputError` if a subject has two images at one slice index (no volume then)."""
    if slice_index is None:
        return
    seen: set[tuple[str, int]] = set()
    for sub, k in zip(subjects, np.asarray(slice_index).tolist(), strict=True):
        if k < 0:
            continue
        if (sub, k) in seen:
            raise InputError(
                f"{name}: subject has two images at slice index {k}; a test set needs one image per slice "
                "per subject (ingest the real test subjects once)"
            )
        seen.add((sub, k))


def stack_volumes(masks: np.ndarray, subjects: Sequence[str], slice_index: np.ndarray | None) -> dict[str, np.ndarray]:
    """Restack per-slice masks (N x R x H x W) into one volume per subject (R x S x H x W, slices in order).

    Images with an unknown slice index (-1) keep their position in the set, after the known ones.
    """
    n = len(subjects)
    if masks.shape[0] != n:
        raise InputError(f"{masks.shape[0]} masks for {n} subject entries")
    slices = np.full(n, -1, dtype=np.int64) if slice_index is None else np.asarray(slice_index, dtype=np.int64)
    check_slice_order(subjects, slices, "test set")
    volumes: dict[str, np.ndarray] = {}
    for sub in dict.fromkeys(subjects):
        rows = np.flatnonzero(np.asarray(subjects) == sub)
        key = np.where(slices[rows] >= 0, slices[rows], np.iinfo(np.int64).max)
        rows = rows[np.argsort(key, kind="stable")]
        volumes[sub] = np.moveaxis(masks[rows], 0, 1)
    return volumes


class DiceAccumulator:
    """Streams batches of (prediction, truth) masks and gives Dice per subject and region.

    Args:
        subjects: the distinct subjects, in report order.
    """

    def __init__(self, subjects: Sequence[str]) -> None:
        self.subjects = tuple(subjects)
        self._code = {s: i for i, s in enumerate(self.subjects)}
        shape = (len(self.subjects), len(REGIONS))
        self.intersection = np.zeros(shape, dtype=np.int64)
        self.pred = np.zeros(shape, dtype=np.int64)
        self.true = np.zeros(shape, dtype=np.int64)
        self.slices = np.zeros(len(self.subjects), dtype=np.int64)

    def update(self, pred: np.ndarray, true: np.ndarray, subjects: Sequence[str]) -> None:
        """Add a batch: binary ``pred`` and ``true`` (B x R x H x W) of the images of ``subjects``."""
        if pred.shape != true.shape or pred.shape[0] != len(subjects) or pred.shape[1] != len(REGIONS):
            raise InputError(f"batch shapes {pred.shape}, {true.shape} do not match {len(subjects)} subjects")
        try:
            codes = np.array([self._code[s] for s in subjects], dtype=np.int64)
        except KeyError as e:
            raise InputError(f"subject {e.args[0]!r} was not declared to the accumulator") from None
        p, t = pred.astype(bool), true.astype(bool)
        np.add.at(self.intersection, codes, (p & t).sum(axis=(2, 3)))
        np.add.at(self.pred, codes, p.sum(axis=(2, 3)))
        np.add.at(self.true, codes, t.sum(axis=(2, 3)))
        np.add.at(self.slices, codes, 1)

    def result(self) -> list[SubjectDice]:
        """Dice per subject (subjects without any image are left out)."""
        dice = dice_from_counts(self.intersection, self.pred, self.true)
        return [
            SubjectDice(
                subject=sub,
                dice={r: float(dice[i, j]) for j, r in enumerate(REGIONS)},
                true_voxels={r: int(self.true[i, j]) for j, r in enumerate(REGIONS)},
                slices=int(self.slices[i]),
            )
            for i, sub in enumerate(self.subjects)
            if self.slices[i] > 0
        ]


def predict_masks(model: nn.Module, x: np.ndarray, device: str = "cpu", threshold: float = 0.5) -> np.ndarray:
    """Binary region masks (B x R x H x W, bool) of a batch of images, sigmoid > ``threshold``."""
    import torch

    with torch.inference_mode():
        logits = model(torch.from_numpy(x).to(device))
        return (torch.sigmoid(logits) > threshold).cpu().numpy()


def evaluate_subjects(
    model: nn.Module,
    test: ImageSet,
    device: str = "cpu",
    batch_size: int = 32,
    progress: Progress | None = None,
    check_labels: bool = True,
) -> list[SubjectDice]:
    """Dice per subject of ``model`` on a labelled test set (its slices restacked by subject).

    ``check_labels=False`` skips the scan of the label values (for a set the caller already checked).

    Raises:
        InputError: the set is unlabelled or a subject has two images at one slice index.
    """
    data = SegmentationData((test,), ("real-test",), check_labels=check_labels)
    check_slice_order(test.subjects, test.slice_index, "real test set")
    acc = DiceAccumulator(test.subject_ids)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(test), batch_size):
            idx = np.arange(start, min(start + batch_size, len(test)))
            x, y = data.batch(idx)
            acc.update(predict_masks(model, x, device), y, test.subjects[start : start + len(idx)])
            if progress is not None:
                progress("evaluate", int(idx[-1]) + 1, len(test))
    finally:
        model.train(was_training)
    return acc.result()
