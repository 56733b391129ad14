"""The geometric transforms of the audit, defined once: their names, the warp grid, and how a match's
transform maps a training image onto the synthetic one.

Conventions (one for the whole audit): a match reports ``flip`` (the training image is mirrored left-right),
``angle_deg`` (rotation, degrees, counter-clockwise as displayed), ``scale`` (zoom about the centre) and
``shift_y``, ``shift_x`` (pixels): the synthetic image is the training image mirrored, rotated and zoomed about
its centre, then moved by the shift.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np


class Transform(StrEnum):
    """Geometric transforms the search tolerates (intensity changes, noise, blur, blends need no search)."""

    HFLIP = "hflip"
    SHIFT = "shift"
    ROTATE = "rotate"
    ZOOM = "zoom"


ALL_TRANSFORMS = (Transform.HFLIP, Transform.SHIFT, Transform.ROTATE, Transform.ZOOM)
#: Smallest rotation (degrees), zoom (|scale - 1|) and shift (pixels) that a match's name reports: the
#: refinement moves the parameters continuously, and a copy is not "rotated" by a hundredth of a degree.
MIN_ANGLE, MIN_ZOOM, MIN_SHIFT = 0.5, 0.005, 0.5
#: Reported for images with a constant channel, which are never matched.
ZERO_VARIANCE = "zero-variance"


def transform_name(flip: bool, angle_deg: float, scale: float, shift_y: float, shift_x: float) -> str:
    """``identity``, or the parts of the match's transform joined by ``+`` (``hflip+rotate+zoom+shift``)."""
    parts = []
    if flip:
        parts.append(Transform.HFLIP.value)
    if abs(angle_deg) >= MIN_ANGLE:
        parts.append(Transform.ROTATE.value)
    if abs(scale - 1.0) >= MIN_ZOOM:
        parts.append(Transform.ZOOM.value)
    if max(abs(shift_y), abs(shift_x)) >= MIN_SHIFT:
        parts.append(Transform.SHIFT.value)
    return "+".join(parts) or "identity"


@dataclass(frozen=True)
class Warp:
    """One rotation/zoom of the grid searched before the shift search."""

    angle_deg: float
    scale: float

    @property
    def identity(self) -> bool:
        return self.angle_deg == 0.0 and self.scale == 1.0


def make_warps(rotations: Sequence[float], scales: Sequence[float]) -> tuple[Warp, ...]:
    """The rotation x zoom grid, identity first."""
    grid = {(0.0, 1.0)} | {(float(a), float(s)) for a in (0.0, *rotations) for s in (1.0, *scales)}
    return tuple(Warp(a, s) for a, s in sorted(grid, key=lambda w: (w != (0.0, 1.0), abs(w[0]), abs(w[1] - 1))))


def _theta(angle_deg: float, scale: float, shift_y: float = 0.0, shift_x: float = 0.0,
           h: int = 1, w: int = 1) -> list[list[float]]:
    """``affine_grid`` matrix of output(p) = input(A p + t): the input rotated by ``angle_deg``, zoomed by
    ``scale`` and moved by the shift (pixels)."""
    a = np.deg2rad(angle_deg)
    co, si = np.cos(a) / scale, np.sin(a) / scale
    # normalised coordinates: x right, y down; a counter-clockwise rotation as displayed
    tx, ty = -2.0 * shift_x / w, -2.0 * shift_y / h
    return [[co, -si, co * tx - si * ty], [si, co, si * tx + co * ty]]


@functools.lru_cache(maxsize=16)
def warp_grid(warps: tuple[Warp, ...], c: int, h: int, w: int, device: str = "cpu") -> Any:
    """Sampling grids that undo each warp (cached: the same grid serves every query of a run)."""
    import torch
    import torch.nn.functional as F

    th = torch.tensor([_theta(-wp.angle_deg, 1.0 / wp.scale) for wp in warps], dtype=torch.float32)
    return F.affine_grid(th, [len(warps), c, h, w], align_corners=False).to(device)


def apply_match_transform(image: np.ndarray, flip: bool, angle_deg: float, scale: float, shift_y: float,
                          shift_x: float) -> np.ndarray:
    """The C x H x W training ``image`` moved as the match says, onto the synthetic image (bilinear, zero fill).

    Used to show a match after alignment (the private report) and to test the alignment.
    """
    import torch
    import torch.nn.functional as F

    x = np.ascontiguousarray(image[..., ::-1] if flip else image, dtype=np.float32)
    c, h, w = x.shape
    th = torch.tensor([_theta(angle_deg, scale, shift_y, shift_x, h, w)], dtype=torch.float32)
    grid = F.affine_grid(th, [1, c, h, w], align_corners=False)
    out = F.grid_sample(torch.from_numpy(x)[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0].numpy()


def forward_shift(angle_deg: float, scale: float, dy: float, dx: float) -> tuple[float, float]:
    """The shift of the forward transform, (shift_y, shift_x) pixels, when the synthetic image warped back by
    (``angle_deg``, ``scale``) matches the training image moved by ``-(dy, dx)``: ``t = -scale R(angle) d``."""
    a = np.deg2rad(angle_deg)
    co, si = np.cos(a), np.sin(a)
    tx = -scale * (co * dx + si * dy)
    ty = -scale * (-si * dx + co * dy)
    return float(ty), float(tx)


def warp_views(x: Any, warps: tuple[Warp, ...]) -> Any:
    """n x G x C x H x W: each of the n x C x H x W images (torch) with each warp undone (bilinear).

    The padding repeats the border, the background of a brain slice, so a warp adds no artificial edge.
    """
    import torch

    n, c, h, w = x.shape
    out = torch.empty((n, len(warps), c, h, w), dtype=x.dtype, device=x.device)
    grid = warp_grid(warps, c, h, w, str(x.device))
    for g, wp in enumerate(warps):
        if wp.identity:
            out[:, g] = x
        else:
            out[:, g] = _sample(x, grid[g : g + 1].expand(n, -1, -1, -1))
    return out


def warp_each(x: Any, warps: tuple[Warp, ...], which: Any) -> Any:
    """n x C x H x W: image ``i`` of ``x`` (torch, n x C x H x W) with warp ``warps[which[i]]`` undone, as
    :func:`warp_views` would (one view per image instead of every view)."""
    _n, c, h, w = x.shape
    return _sample(x, warp_grid(warps, c, h, w, str(x.device))[which])


def _sample(x: Any, grid: Any) -> Any:
    """``x`` resampled at ``grid`` (bilinear; the border repeated, see :func:`warp_views`)."""
    import torch.nn.functional as F

    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
