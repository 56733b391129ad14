"""From one subject's volumes to 2D slices: per-volume normalisation, slice selection, square padding, resizing.

Normalisations (per volume, per sequence, statistics inside the brain mask; background set to 0):

* ``robust-minmax`` (default): ``(x - p0.5) / (p99.5 - p0.5)`` clipped to [0, 1]. On raw, non-negative MRI the
  0.5th percentile is near 0, so this is the reference study's scaling by a robust maximum; it also handles
  z-scored data (BRATS 2013) whose values are negative.
* ``robust-max``: ``x / p99.5`` clipped to [0, 1] (the study's scaling, for non-negative data).
* ``zscore``: ``(x - mean) / sd`` inside the brain, unbounded.
* ``none``: intensities as stored.
"""

from __future__ import annotations

import numpy as np

from synthgate.data.brats import SubjectVolumes
from synthgate.data.config import IngestConfig, Normalisation, SliceSelection
from synthgate.errors import UsageError


def normalise_volume(x: np.ndarray, brain: np.ndarray, method: Normalisation,
                     percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Normalise one sequence volume using the statistics inside ``brain``; background becomes 0."""
    x = x.astype(np.float32, copy=False)
    inside = x[brain]
    if method is Normalisation.NONE or inside.size == 0:
        return np.where(brain, x, 0).astype(np.float32)
    if method is Normalisation.ZSCORE:
        sd = float(inside.std()) or 1.0
        out = (x - float(inside.mean())) / sd
    else:
        lo, hi = (float(v) for v in np.percentile(inside, percentiles))
        if method is Normalisation.ROBUST_MAX:
            lo = 0.0
        out = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return np.where(brain, out, 0).astype(np.float32)


def _to_square(stack: np.ndarray) -> np.ndarray:
    """Zero-pad the last two axes of ``stack`` to a centred square."""
    h, w = stack.shape[-2:]
    s = max(h, w)
    ph, pw = s - h, s - w
    pad = [(0, 0)] * (stack.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
    return np.pad(stack, pad)


def _resize(stack: np.ndarray, size: int) -> np.ndarray:
    """Resize N x C x S x S images to N x C x size x size (antialiased bilinear)."""
    if stack.shape[-1] == size:
        return np.ascontiguousarray(stack, dtype=np.float32)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True).numpy()


def _resize_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """Resize N x 1 x S x S integer labels: each value's antialiased coverage, then the most covered value.

    Unlike nearest-neighbour sampling this keeps small structures that cover enough of an output pixel.
    """
    if labels.shape[-1] == size:
        return np.ascontiguousarray(labels, dtype=np.float32)
    values = np.unique(labels)
    onehot = np.concatenate([(labels == v).astype(np.float32) for v in values], axis=1)
    cover = _resize(onehot, size)
    return values[np.argmax(cover, axis=1)][:, None].astype(np.float32)


def slice_subject(vol: SubjectVolumes, sequences: tuple[str, ...], config: IngestConfig,
                  has_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """Normalise, select and resize one subject's axial slices.

    Returns:
        (images N x C x size x size float32, slice indices N) with the label as the last channel when
        ``has_label``.
    """
    brain = vol.brainmask
    if brain is None:
        brain = np.zeros(next(iter(vol.sequences.values())).shape, dtype=bool)
        for s in sequences:
            brain |= vol.sequences[s] != 0
    chans = [normalise_volume(vol.sequences[s], brain, config.normalisation, config.percentiles) for s in sequences]
    fraction = brain.mean(axis=(0, 1))
    keep = fraction >= config.min_brain_fraction
    if config.slices is SliceSelection.TUMOUR and vol.label is None:
        raise UsageError("--slices tumour needs label files; this cohort has none")
    z = np.flatnonzero(keep)
    if has_label:
        assert vol.label is not None  # checked by the caller: every subject has a label file
        chans.append(vol.label.astype(np.float32))
    # RAS volume X x Y x Z -> axial images with anterior up: rows = Y reversed, columns = X
    # (axis codes P, R, S: synthgate.data.geometry.SLICE_AXES, recorded in the store's meta).
    stack = np.stack([c[:, :, z] for c in chans])  # C x X x Y x N
    stack = np.transpose(stack, (3, 0, 2, 1))[:, :, ::-1, :]  # N x C x Y x X, anterior up
    stack = _to_square(stack)
    img = _resize(stack[:, : len(sequences)], config.size)
    if has_label:
        lab = _resize_labels(stack[:, len(sequences) :], config.size)
        img = np.concatenate([img, lab], axis=1)
        if config.slices is SliceSelection.TUMOUR:  # decided at the output size: the tumour must survive resizing
            has_tumour = (lab > 0).any(axis=(1, 2, 3))
            img, z = img[has_tumour], z[has_tumour]
    return np.ascontiguousarray(img, dtype=np.float32), z
