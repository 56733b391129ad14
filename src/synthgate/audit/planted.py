"""Planted copies: transformed copies of training images, to measure what the audit detects.

Each kind mimics a copy a generator really makes: mirror augmentation, translations up to +-10 % of the side,
rotations up to 10 degrees, slight zoom, intensity scale/offset, noise, blur and partial blends with another
image. The label channel (if any) is moved with the geometry and left out of intensity changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum

import numpy as np

from synthgate.data.imageset import ImageSet
from synthgate.errors import UsageError


class CopyKind(StrEnum):
    """Kinds of planted copy."""

    IDENTITY = "identity"
    HFLIP = "hflip"
    SHIFT = "shift"
    ROTATE = "rotate"
    ZOOM = "zoom"
    INTENSITY = "intensity"
    NOISE = "noise"
    BLUR = "blur"
    BLEND = "blend"
    COMBINED = "combined"  # hflip + shift + rotate + intensity


def _geom(x: np.ndarray, angle: float = 0.0, zoom: float = 1.0, dy: float = 0.0, dx: float = 0.0,
          label: int | None = None) -> np.ndarray:
    """Rotate (degrees, counter-clockwise), zoom about the centre, then shift (pixels) each channel; zero fill."""
    from scipy import ndimage as ndi

    h, w = x.shape[-2:]
    a = np.deg2rad(angle)
    # output(o) = input(M o + off); M = R(-angle) / zoom, keeping the centre fixed, then the shift
    m = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) / zoom
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    off = centre - m @ (centre + np.array([dy, dx]))
    out = np.empty_like(x)
    for c in range(x.shape[0]):
        out[c] = ndi.affine_transform(x[c], m, offset=off, order=0 if c == label else 1, mode="constant", cval=0.0)
    return out


def make_copy(x: np.ndarray, kind: CopyKind, rng: np.random.Generator, other: np.ndarray | None = None,
              label: int | None = None) -> np.ndarray:
    """A transformed copy of the C x H x W image ``x`` (``other`` is the blend partner)."""
    from scipy import ndimage as ndi

    h, w = x.shape[-2:]
    img = [c for c in range(x.shape[0]) if c != label]
    y = np.array(x, dtype=np.float32)
    if kind in (CopyKind.HFLIP, CopyKind.COMBINED):
        y = y[..., ::-1].copy()
    if kind in (CopyKind.SHIFT, CopyKind.COMBINED):
        dy, dx = rng.uniform(-0.1, 0.1, 2) * (h, w)
        y = _geom(y, dy=float(dy), dx=float(dx), label=label)
    if kind in (CopyKind.ROTATE, CopyKind.COMBINED):
        y = _geom(y, angle=float(rng.choice([-1, 1]) * rng.uniform(3, 10)), label=label)
    if kind is CopyKind.ZOOM:
        y = _geom(y, zoom=float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.06) + 1), label=label)
    if kind in (CopyKind.INTENSITY, CopyKind.COMBINED):
        y[img] = y[img] * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
    if kind is CopyKind.NOISE:
        y[img] += rng.normal(0, 0.03, y[img].shape).astype(np.float32)
    if kind is CopyKind.BLUR:
        for c in img:
            y[c] = ndi.gaussian_filter(y[c], 1.0)
    if kind is CopyKind.BLEND:
        if other is None:
            raise UsageError("a blend copy needs a second image")
        y[img] = 0.7 * y[img] + 0.3 * np.asarray(other, dtype=np.float32)[img]
    return y


def plant_copies(train: ImageSet, n_per_kind: int, kinds: Sequence[CopyKind | str] = tuple(CopyKind),
                 seed: int = 0, prefix: str = "copy") -> tuple[ImageSet, np.ndarray]:
    """Transformed copies of random training images.

    Returns:
        (the copies as an in-memory set with ids ``{prefix}-{kind}-{i}`` and source = kind,
        the training row each copy was made from).
    """
    rng = np.random.default_rng(seed)
    kinds_ = [CopyKind(k) for k in kinds]
    rows = rng.choice(len(train), size=(len(kinds_), n_per_kind), replace=len(train) < n_per_kind)
    partners = rng.choice(len(train), size=rows.shape)
    src = train.read_rows(rows.ravel())
    oth = train.read_rows(partners.ravel())
    out, ids, sources = [], [], []
    for j, kind in enumerate(kinds_):
        for i in range(n_per_kind):
            f = j * n_per_kind + i
            out.append(make_copy(src[f], kind, rng, other=oth[f], label=train.label_channel))
            ids.append(f"{prefix}-{kind}-{i}")
            sources.append(str(kind))
    images = np.stack(out) if out else np.zeros((0, *train.shape), np.float32)
    copies = replace(train.subset([]), images=images, ids=tuple(ids), subjects=tuple(ids),
                     slice_index=np.full(len(ids), -1), seeds=np.full(len(ids), -1), sources=tuple(sources))
    return copies, rows.ravel()
