"""Training a segmentation network: Dice + BCE loss, AdamW, polynomial LR decay, batched augmentations,
best checkpoint chosen on a validation split of the training source.

The validation split is by subject when the source has at least ``MIN_SUBJECTS_FOR_SUBJECT_SPLIT`` subjects,
else by slice (few subjects cannot spare one for validation; it only picks the checkpoint, the test
subjects stay disjoint).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from synthgate.errors import UsageError
from synthgate.runtime import Progress
from synthgate.segment.augment import AugmentSpec, BatchAugment
from synthgate.segment.data import SegmentationData
from synthgate.segment.evaluate import dice_from_counts, predict_masks
from synthgate.segment.models import Net, build_model, check_size

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

MIN_SUBJECTS_FOR_SUBJECT_SPLIT = 5


@dataclass(frozen=True)
class SegmentTrainConfig:
    """How one network is trained.

    Attributes:
        net: the network.
        epochs: passes over the training slices.
        batch_size: slices per step.
        lr: peak AdamW learning rate (decays polynomially to 0 over the run).
        weight_decay: AdamW weight decay.
        width: U-Net first-level channels or SwinUNETR feature size.
        val_fraction: share of the training source held out to choose the best epoch (0: keep the last).
        augment: flips, affine and intensity augmentations (:mod:`synthgate.segment.augment`), on the device.
        poly_power: exponent of the polynomial LR decay.
        max_slices: train on at most this many slices (a random subset; ``None``: all).
        amp: bfloat16 autocast of the forward pass on CUDA (ignored on the CPU).
    """

    net: Net = Net.UNET
    epochs: int = 20
    batch_size: int = 8
    lr: float = 5e-3
    weight_decay: float = 1e-4
    width: int = 16
    val_fraction: float = 0.15
    augment: bool = True
    poly_power: float = 0.9
    max_slices: int | None = None
    amp: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "net", Net(self.net))
        if self.epochs < 1:
            raise UsageError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise UsageError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if not 0 <= self.val_fraction < 1:
            raise UsageError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_slices is not None and self.max_slices < 1:
            raise UsageError(f"--max-slices must be >= 1, got {self.max_slices}")


@dataclass(frozen=True, eq=False)
class TrainResult:
    """A trained network (best checkpoint loaded) and its history."""

    model: Any  # torch.nn.Module, in eval mode
    best_epoch: int
    best_val_dice: float | None
    history: tuple[dict[str, float], ...]
    n_train: int
    n_val: int
    val_split: str
    seconds: float
    slices_per_second: float


def split_validation(
    subjects: tuple[str, ...], val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, str]:
    """Indices (train, val) and the split kind: ``subject`` with enough subjects, else ``slice``."""
    n = len(subjects)
    if val_fraction == 0 or n < 2:
        return np.arange(n), np.arange(0), "none"
    distinct = list(dict.fromkeys(subjects))
    if len(distinct) >= MIN_SUBJECTS_FOR_SUBJECT_SPLIT:
        k = max(1, round(val_fraction * len(distinct)))
        held = {distinct[i] for i in rng.choice(len(distinct), size=k, replace=False).tolist()}
        is_val = np.fromiter((s in held for s in subjects), dtype=bool, count=n)
        return np.flatnonzero(~is_val), np.flatnonzero(is_val), "subject"
    perm = rng.permutation(n)
    k = max(1, round(val_fraction * n))
    return np.sort(perm[k:]), np.sort(perm[:k]), "slice"


def _to_device(a: np.ndarray, device: str) -> torch.Tensor:
    """A host batch on ``device``; through pinned memory on CUDA so the copy overlaps queued compute."""
    import torch

    t = torch.from_numpy(a)
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _val_dice(model: nn.Module, data: SegmentationData, index: np.ndarray, device: str, batch: int) -> float:
    """Mean over regions of the Dice pooled over the validation slices."""
    counts = np.zeros((3, 3), dtype=np.int64)  # intersection, pred, true x region
    model.eval()
    for start in range(0, len(index), batch):
        x, y = data.batch(index[start : start + batch])
        p, t = predict_masks(model, x, device), y.astype(bool)
        counts += np.stack([(p & t).sum(axis=(0, 2, 3)), p.sum(axis=(0, 2, 3)), t.sum(axis=(0, 2, 3))])
    model.train()
    return float(dice_from_counts(counts[0], counts[1], counts[2]).mean())


def train_segmenter(
    data: SegmentationData,
    config: SegmentTrainConfig,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
) -> TrainResult:
    """Train ``config.net`` on ``data`` and return it with the best validation checkpoint loaded.

    Args:
        data: the training source (labelled; the label channel becomes the WT/TC/ET targets).
        config: training settings.
        seed: seeds the weights, the split, the batch order and the augmentations.
        device: where the network trains.
        progress: called as ``progress("segment", epochs done, epochs)`` after each epoch.

    Raises:
        UsageError: the images do not fit the network.
    """
    import torch
    from monai.losses import DiceLoss

    check_size(config.net, *data.size)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    pool = np.arange(len(data))
    if config.max_slices is not None and config.max_slices < len(pool):
        pool = np.sort(rng.choice(len(pool), size=config.max_slices, replace=False))
    subjects = data.subjects
    tr, va, kind = split_validation(tuple(subjects[i] for i in pool), config.val_fraction, rng)
    train_idx, val_idx = pool[tr], pool[va]
    model = build_model(config.net, data.in_channels, 3, config.width).to(device)
    # Dice (over the batch: tumours are sparse and many slices are empty) + binary CE per region. Not MONAI's
    # DiceCELoss: with more than one output channel it applies a softmax CE even when sigmoid=True.
    dice_loss = DiceLoss(sigmoid=True, batch=True)
    bce_loss = torch.nn.BCEWithLogitsLoss()

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_loss(logits, target) + bce_loss(logits, target)

    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    sched = torch.optim.lr_scheduler.PolynomialLR(
        opt, total_iters=config.epochs * steps_per_epoch, power=config.poly_power
    )
    augment = BatchAugment(AugmentSpec(), seed) if config.augment else None
    amp = config.amp and torch.device(device).type == "cuda"
    best: tuple[float, int, dict[str, Any]] | None = None
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    model.train()
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(train_idx)
        total, seen = torch.zeros((), device=device), 0  # summed on the device: no host sync per step
        for start in range(0, len(order), config.batch_size):
            if len(order) - start == 1 and start > 0:
                break  # a last batch of one slice: batch norm needs two (the slice is in the next epoch's draw)
            x, y = data.batch(order[start : start + config.batch_size])
            xb, yb = _to_device(x, device), _to_device(y, device)
            if augment is not None:
                xb, yb = augment(xb, yb)  # on the device: the CPU is not the bottleneck of GPU training
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                logits = model(xb)
            loss = loss_fn(logits.float(), yb)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(x)
            seen += len(x)
        row = {"epoch": float(epoch), "loss": float(total) / max(seen, 1)}
        if len(val_idx):
            row["val_dice"] = _val_dice(model, data, val_idx, device, 2 * config.batch_size)
            if best is None or row["val_dice"] > best[0]:
                best = (row["val_dice"], epoch, copy.deepcopy(model.state_dict()))
        history.append(row)
        logger.debug("epoch %d: %s", epoch, row)
        if progress is not None:
            progress("segment", epoch, config.epochs)
    seconds = time.perf_counter() - t0
    best_epoch, best_val = config.epochs, None
    if best is not None:
        best_val, best_epoch = best[0], best[1]
        model.load_state_dict(best[2])
    model.eval()
    return TrainResult(
        model=model,
        best_epoch=best_epoch,
        best_val_dice=best_val,
        history=tuple(history),
        n_train=len(train_idx),
        n_val=len(val_idx),
        val_split=kind,
        seconds=seconds,
        slices_per_second=config.epochs * len(train_idx) / seconds if seconds > 0 else float("nan"),
    )
