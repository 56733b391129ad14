"""Planted copies: transformed copies of training images, to measure what the audit detects.

Each kind mimics a copy a generator really makes. The basic kinds (:data:`BASIC_KINDS`): mirror augmentation,
translations up to +-10 % of the side, rotations up to 10 degrees, slight zoom, intensity scale/offset, noise,
blur and a 70/30 blend with another image. The hard kinds (:data:`HARD_KINDS`, issue 10): rotations of 15-20
degrees, zoom in (1.10-1.15) and out (0.87-0.91), shifts of 13-16 % of the side, a gamma curve, a smooth elastic
displacement of 2-4 px, partial copies (half of the slice, or a quarter-area patch around the tumour, the rest
from another patient's slice) and a 50/50 blend with another patient's slice.

The label channel (if any) moves with the geometry (nearest neighbour) and is left out of intensity changes;
a partial copy takes each region's label from the image that region came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
    BLEND = "blend"  # 0.7 copy + 0.3 another image
    COMBINED = "combined"  # hflip + shift + rotate + intensity
    ROTATE20 = "rotate20"  # |angle| in [15, 20] degrees
    ZOOM_IN = "zoom_in"  # 1.10-1.15
    ZOOM_OUT = "zoom_out"  # 0.87-0.91
    SHIFT_LARGE = "shift_large"  # 13-16 % of the side, any direction
    GAMMA = "gamma"  # exponent 0.6-0.8 or 1.3-1.6 on the [0, 1]-scaled channel
    ELASTIC = "elastic"  # smooth random displacement, largest 2-4 px
    HALF = "half"  # top or bottom half of the copy, the rest from another patient's slice
    PATCH = "patch"  # a quarter-area square around the tumour pasted into another patient's slice
    BLEND50 = "blend50"  # 0.5 copy + 0.5 another patient's slice


BASIC_KINDS: tuple[CopyKind, ...] = tuple(CopyKind)[:10]
HARD_KINDS: tuple[CopyKind, ...] = tuple(CopyKind)[10:]
PARTNER_KINDS = frozenset({CopyKind.BLEND, CopyKind.HALF, CopyKind.PATCH, CopyKind.BLEND50})
OTHER_SUBJECT_KINDS = frozenset({CopyKind.HALF, CopyKind.PATCH, CopyKind.BLEND50})


@dataclass(frozen=True)
class PlantedCopy:
    """One planted copy and the parameters drawn for it (``angle``, ``zoom``, ``dy``/``dx`` in pixels,
    ``gamma``, ``max_displacement``, ``top``, ``y0, y1, x0, x1`` of a patch, ``weight`` of a blend)."""

    image: np.ndarray
    params: dict[str, float] = field(default_factory=dict)


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


def _elastic(x: np.ndarray, rng: np.random.Generator, label: int | None) -> PlantedCopy:
    """A smooth random displacement field (Gaussian-smoothed noise, sigma = side / 8) scaled so that its
    largest displacement is 2-4 px; the label is resampled nearest-neighbour."""
    from scipy import ndimage as ndi

    h, w = x.shape[-2:]
    field_ = np.stack([ndi.gaussian_filter(rng.normal(size=(h, w)), max(h, w) / 8) for _ in range(2)])
    largest = float(rng.uniform(2.0, 4.0))
    field_ *= largest / max(float(np.sqrt((field_ ** 2).sum(0)).max()), 1e-12)
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    coords = np.stack([yy + field_[0], xx + field_[1]])
    out = np.stack([ndi.map_coordinates(x[c], coords, order=0 if c == label else 1, mode="constant", cval=0.0)
                    for c in range(x.shape[0])]).astype(np.float32)
    return PlantedCopy(out, {"max_displacement": largest})


def _gamma(y: np.ndarray, img: list[int], rng: np.random.Generator) -> PlantedCopy:
    """Each image channel scaled to [0, 1] by its range, raised to ``gamma``, scaled back to that range."""
    g = float(rng.uniform(0.6, 0.8) if rng.random() < 0.5 else rng.uniform(1.3, 1.6))
    for c in img:
        lo, hi = float(y[c].min()), float(y[c].max())
        if hi > lo:
            y[c] = lo + (hi - lo) * ((y[c] - lo) / (hi - lo)) ** g
    return PlantedCopy(y, {"gamma": g})


def patch_box(x: np.ndarray, label: int | None, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of a square of half the side (a quarter of the area) centred on the tumour (label >
    0), or on a random point of the central half without a tumour; moved inside the image where it would cross
    the border."""
    h, w = x.shape[-2:]
    ph, pw = h // 2, w // 2
    tumour = np.argwhere(x[label] > 0) if label is not None else np.zeros((0, 2))
    if len(tumour):
        cy, cx = tumour.mean(0)
    else:
        cy, cx = rng.uniform(h / 4, 3 * h / 4), rng.uniform(w / 4, 3 * w / 4)
    y0 = int(np.clip(round(cy - ph / 2), 0, h - ph))
    x0 = int(np.clip(round(cx - pw / 2), 0, w - pw))
    return y0, y0 + ph, x0, x0 + pw


def transform_copy(x: np.ndarray, kind: CopyKind, rng: np.random.Generator, other: np.ndarray | None = None,
                   label: int | None = None) -> PlantedCopy:
    """A transformed copy of the C x H x W image ``x`` and its parameters (``other``: the blend or partial-copy
    partner, of the same shape)."""
    from scipy import ndimage as ndi

    kind = CopyKind(kind)
    h, w = x.shape[-2:]
    img = [c for c in range(x.shape[0]) if c != label]
    y = np.array(x, dtype=np.float32)
    params: dict[str, float] = {}
    if kind in PARTNER_KINDS and other is None:
        raise UsageError(f"a {kind} copy needs a second image")
    o = None if other is None else np.asarray(other, dtype=np.float32)
    if kind in (CopyKind.HFLIP, CopyKind.COMBINED):
        y = y[..., ::-1].copy()
    if kind in (CopyKind.SHIFT, CopyKind.COMBINED):
        dy, dx = rng.uniform(-0.1, 0.1, 2) * (h, w)
        y = _geom(y, dy=float(dy), dx=float(dx), label=label)
        params |= {"dy": float(dy), "dx": float(dx)}
    if kind in (CopyKind.ROTATE, CopyKind.COMBINED):
        params["angle"] = float(rng.choice([-1, 1]) * rng.uniform(3, 10))
        y = _geom(y, angle=params["angle"], label=label)
    if kind is CopyKind.ZOOM:
        params["zoom"] = float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.06) + 1)
        y = _geom(y, zoom=params["zoom"], label=label)
    if kind in (CopyKind.INTENSITY, CopyKind.COMBINED):
        y[img] = y[img] * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
    if kind is CopyKind.NOISE:
        y[img] += rng.normal(0, 0.03, y[img].shape).astype(np.float32)
    if kind is CopyKind.BLUR:
        for c in img:
            y[c] = ndi.gaussian_filter(y[c], 1.0)
    if kind in (CopyKind.BLEND, CopyKind.BLEND50) and o is not None:
        params["weight"] = wt = 0.7 if kind is CopyKind.BLEND else 0.5
        y[img] = wt * y[img] + (1 - wt) * o[img]
    if kind is CopyKind.ROTATE20:
        params["angle"] = float(rng.choice([-1, 1]) * rng.uniform(15, 20))
        y = _geom(y, angle=params["angle"], label=label)
    if kind in (CopyKind.ZOOM_IN, CopyKind.ZOOM_OUT):
        params["zoom"] = float(rng.uniform(1.10, 1.15) if kind is CopyKind.ZOOM_IN else rng.uniform(0.87, 0.91))
        y = _geom(y, zoom=params["zoom"], label=label)
    if kind is CopyKind.SHIFT_LARGE:
        size, theta = rng.uniform(0.13, 0.16), rng.uniform(0, 2 * np.pi)
        params |= {"dy": float(size * h * np.sin(theta)), "dx": float(size * w * np.cos(theta))}
        y = _geom(y, dy=params["dy"], dx=params["dx"], label=label)
    if kind is CopyKind.GAMMA:
        return _gamma(y, img, rng)
    if kind is CopyKind.ELASTIC:
        return _elastic(y, rng, label)
    if kind is CopyKind.HALF and o is not None:
        top = bool(rng.random() < 0.5)
        rows = slice(0, h // 2) if top else slice(h // 2, h)
        part = o.copy()
        part[:, rows] = y[:, rows]
        return PlantedCopy(part, {"top": float(top)})
    if kind is CopyKind.PATCH and o is not None:
        y0, y1, x0, x1 = patch_box(y, label, rng)
        part = o.copy()
        part[:, y0:y1, x0:x1] = y[:, y0:y1, x0:x1]
        return PlantedCopy(part, {"y0": y0, "y1": y1, "x0": x0, "x1": x1})
    return PlantedCopy(y, params)


def make_copy(x: np.ndarray, kind: CopyKind, rng: np.random.Generator, other: np.ndarray | None = None,
              label: int | None = None) -> np.ndarray:
    """A transformed copy of the C x H x W image ``x`` (``other`` is the blend or partial-copy partner)."""
    return transform_copy(x, kind, rng, other=other, label=label).image


def _other_subject_partners(train: ImageSet, rows: np.ndarray, seed: int) -> np.ndarray:
    """For each source row, a random row of another subject (of another row where the set has one subject)."""
    rng = np.random.default_rng([seed, 1])
    subjects = np.asarray(train.subjects, dtype=object)
    out = np.empty_like(rows)
    for i, r in np.ndenumerate(rows):
        pool = np.flatnonzero(subjects != subjects[r])
        if not len(pool):
            pool = np.flatnonzero(np.arange(len(train)) != r) if len(train) > 1 else np.array([r])
        out[i] = rng.choice(pool)
    return out


def _draw_rows(train: ImageSet, n_per_kind: int, kinds: Sequence[CopyKind],
               seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """(the generator, kinds x n source rows, their partner rows) of :func:`plant_copies`; the generator goes on
    to draw the transforms."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(train), size=(len(kinds), n_per_kind), replace=len(train) < len(kinds) * n_per_kind)
    partners = rng.choice(len(train), size=rows.shape)
    others = _other_subject_partners(train, rows, seed)
    for j, kind in enumerate(kinds):
        if kind in OTHER_SUBJECT_KINDS:
            partners[j] = others[j]
    return rng, rows, partners


def copy_partners(train: ImageSet, n_per_kind: int, kinds: Sequence[CopyKind | str] = BASIC_KINDS,
                  seed: int = 0) -> np.ndarray:
    """The partner row of each copy :func:`plant_copies` makes with the same arguments (the blend's or partial
    copy's second image; drawn, and unused, for the other kinds), in the copies' order."""
    return _draw_rows(train, n_per_kind, [CopyKind(k) for k in kinds], seed)[2].ravel()


def plant_copies(train: ImageSet, n_per_kind: int, kinds: Sequence[CopyKind | str] = BASIC_KINDS,
                 seed: int = 0, prefix: str = "copy") -> tuple[ImageSet, np.ndarray]:
    """Transformed copies of random training images.

    Partial copies and the 50/50 blend take their partner from another subject; the 70/30 blend (a basic kind)
    from any training image, as it always has, so the basic kinds' copies stay what they were for a seed.

    Returns:
        (the copies as an in-memory set with ids ``{prefix}-{kind}-{i}`` and source = kind,
        the training row each copy was made from).
    """
    kinds_ = [CopyKind(k) for k in kinds]
    rng, rows, partners = _draw_rows(train, n_per_kind, kinds_, seed)
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
