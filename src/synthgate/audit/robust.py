"""Transform-robust matching: shift-invariant candidates and a shift/rotation/zoom-tolerant re-rank.

A generator's copies are rarely pixel-exact: mirror augmentation flips them, and translations, small rotations
and zoom move them. Pixel Pearson is already invariant to intensity scale and offset and tolerant to noise, blur
and partial blends; for geometry the audit adds

* **flipped training images** in the index (handled by the caller);
* a **shift-invariant descriptor** (low-frequency Fourier magnitude of each centred channel) whose own exact
  top-k proposes candidates that pixel search misses when the copy is moved;
* a **re-rank** of every candidate by normalised cross-correlation: the synthetic image is warped over a small
  grid of rotations and zooms, and for each warp the correlation with the candidate is computed for all
  translations up to ``max_shift`` at once by FFT. The best value is the channel-averaged Pearson r of the
  aligned pair (circular correlation of the Pearson features; brain images have a dark background, so the wrap
  is background). The identity is in the grid, so the robust score is never below the pixel score.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthgate.audit.features import pearson_features

DESCRIPTOR_SIZE = 32  # images are area-downsampled to at most this side before the Fourier transform
DESCRIPTOR_FREQ = 6  # keep frequencies |u|, |v| <= this


def shift_descriptors(block: np.ndarray, channels: Sequence[int], label_channel: int | None = None) -> np.ndarray:
    """Shift-invariant descriptors (n x D float32, unit norm, centred) of n x C x H x W images."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(block[:, list(channels)], dtype=np.float32))
    h, w = x.shape[-2:]
    if max(h, w) > DESCRIPTOR_SIZE:
        x = F.adaptive_avg_pool2d(x, (min(h, DESCRIPTOR_SIZE), min(w, DESCRIPTOR_SIZE)))
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    x = x / x.flatten(2).norm(dim=2).clamp_min(1e-12)[..., None, None]
    mag = torch.fft.rfft2(x).abs()
    m = min(DESCRIPTOR_FREQ, mag.shape[-2] // 2, mag.shape[-1] - 1)
    rows = list(range(0, m + 1)) + list(range(mag.shape[-2] - m, mag.shape[-2]))
    d = mag[..., rows, : m + 1].flatten(1).sqrt().double().numpy()
    d = d - d.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    return (d / np.where(norm > 0, norm, 1.0)).astype(np.float32)


@dataclass(frozen=True)
class Warp:
    """One rotation/zoom applied to the synthetic image before the shift search."""

    angle_deg: float
    scale: float

    @property
    def identity(self) -> bool:
        return self.angle_deg == 0.0 and self.scale == 1.0


@dataclass(frozen=True)
class Alignment:
    """Best alignment of each query with its candidates.

    Attributes:
        score: n_q float64, channel-averaged Pearson r at the best alignment (-inf without candidates).
        candidate: n_q ints, column of the best candidate (-1 without candidates).
        angle_deg: rotation that maps the training image onto the synthetic one (``scipy.ndimage.rotate``
            convention: degrees, positive = counter-clockwise as displayed).
        scale: the zoom of the warp grid that aligned the pair (1 = none).
        shift_y, shift_x: its translation in pixels (synthetic = training moved by this many pixels).
    """

    score: np.ndarray
    candidate: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray
    shift_y: np.ndarray
    shift_x: np.ndarray


def make_warps(rotations: Sequence[float], scales: Sequence[float]) -> tuple[Warp, ...]:
    """The rotation x zoom grid, identity first."""
    grid = {(0.0, 1.0)} | {(float(a), float(s)) for a in (0.0, *rotations) for s in (1.0, *scales)}
    return tuple(Warp(a, s) for a, s in sorted(grid, key=lambda w: (w != (0.0, 1.0), abs(w[0]), abs(w[1] - 1))))


@functools.lru_cache(maxsize=8)
def _grid(warps: tuple[Warp, ...], c: int, h: int, w: int) -> Any:
    """Sampling grids of the warps (cached: the same grid serves every query of a run)."""
    import torch
    import torch.nn.functional as F

    theta = []
    for wp in warps:
        a = np.deg2rad(wp.angle_deg)
        # output(p) = input(A p): undo a rotation by +angle and a zoom by scale
        co, si = np.cos(a) / wp.scale, np.sin(a) / wp.scale
        theta.append([[co, -si, 0.0], [si, co, 0.0]])
    th = torch.tensor(theta, dtype=torch.float32)
    return F.affine_grid(th, [len(warps), c, h, w], align_corners=False)


def warp_views(x: np.ndarray, warps: tuple[Warp, ...]) -> np.ndarray:
    """G x C x H x W: ``x`` (C x H x W) resampled by the inverse of each warp (bilinear, zero fill)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.array(x, dtype=np.float32))[None]
    out = np.empty((len(warps), *x.shape), dtype=np.float32)
    rest = [i for i, wp in enumerate(warps) if not wp.identity]
    for i, wp in enumerate(warps):
        if wp.identity:
            out[i] = x
    if rest:
        sub = tuple(warps[i] for i in rest)
        grid = _grid(sub, *x.shape)
        out[rest] = F.grid_sample(t.expand(len(sub), -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                                  align_corners=False).numpy()
    return out


def _spectra(f: np.ndarray, c: int, h: int, w: int) -> Any:
    import torch

    return torch.fft.rfft2(torch.from_numpy(f.reshape(-1, c, h, w)))


def _correlate(fq: Any, qvalid: np.ndarray, fc: Any, cvalid: np.ndarray, h: int, w: int, max_shift: int) -> Any:
    """G x N x S x S circular cross-correlations (S = 2 max_shift + 1, shift -max_shift first) of spectra."""
    import torch

    # corr[g, n, d] = sum_c sum_x q_g[c](x) t_n[c](x + d)
    prod = torch.einsum("gcuv,ncuv->gnuv", fq.conj(), fc)
    corr = torch.fft.irfft2(prod, s=(h, w))
    sy, sx = min(max_shift, (h - 1) // 2), min(max_shift, (w - 1) // 2)
    # shifts -s..-1 sit at the end of the circular correlation, 0..s at the start
    rows = torch.cat([corr[:, :, h - sy :], corr[:, :, : sy + 1]], dim=2) if sy else corr[:, :, :1]
    win = torch.cat([rows[..., w - sx :], rows[..., : sx + 1]], dim=3) if sx else rows[..., :1]
    ok = torch.from_numpy(qvalid)[:, None] & torch.from_numpy(cvalid)[None, :]
    if not bool(ok.all()):
        win = win.masked_fill(~ok[..., None, None], -torch.inf)
    return win


def align(
    query: np.ndarray,
    candidates: np.ndarray,
    channels: Sequence[int],
    label_channel: int | None,
    warps: Sequence[Warp],
    max_shift: int,
    refine: int = 6,
) -> Alignment:
    """Best alignment of one query image with its candidate training images.

    Every candidate is searched over shifts at the identity warp; the ``refine`` best are then searched over
    the whole rotation/zoom grid as well.

    Args:
        query: C x H x W synthetic image.
        candidates: n_c x C x H x W training images (already mirrored where the candidate is a mirror).
        channels, label_channel: as for :func:`~synthgate.audit.features.pearson_features`.
        warps: rotations/zooms to try (:func:`make_warps`; identity first).
        max_shift: largest translation tried, in pixels, along each axis.
        refine: candidates searched over the full warp grid.

    Returns:
        :class:`Alignment` with one entry (the best over candidates and transforms).
    """
    import torch

    warps = tuple(warps)
    c = len(channels)
    h, w = query.shape[-2:]
    cf = pearson_features(candidates, channels, label_channel, np.float32)
    fc = _spectra(cf.vectors, c, h, w)
    q0 = pearson_features(query[None], channels, label_channel, np.float32)
    win0 = _correlate(_spectra(q0.vectors, c, h, w), q0.valid, fc, cf.valid, h, w, max_shift)
    per_cand = win0.flatten(2).amax(dim=2)[0]
    best_g, best = 0, win0
    cand_idx = np.arange(len(candidates))
    if len(warps) > 1 and len(candidates):
        top = torch.argsort(per_cand, descending=True, stable=True)[:refine].numpy()
        rest = warps[1:]
        qw = pearson_features(warp_views(query, rest), channels, label_channel, np.float32)
        winr = _correlate(_spectra(qw.vectors, c, h, w), qw.valid, fc[torch.from_numpy(top)], cf.valid[top], h, w,
                          max_shift)
        if float(winr.max()) > float(win0.max()):
            best_g, best, cand_idx = 1, winr, top
    flat = best.reshape(-1)
    if flat.numel() == 0 or not bool(torch.isfinite(flat.max())):
        return Alignment(np.array([-np.inf]), np.array([-1]), np.zeros(1), np.ones(1), np.zeros(1, np.int64),
                         np.zeros(1, np.int64))
    i = int(torch.argmax(flat))
    g, n, iy, ix = np.unravel_index(i, best.shape)
    wp = warps[0] if best_g == 0 else warps[1 + g]
    # corr peaks at d where t(x + d) = q(x): the synthetic is the training image moved by -d
    dy = int(iy) - min(max_shift, (h - 1) // 2)
    dx = int(ix) - min(max_shift, (w - 1) // 2)
    return Alignment(
        score=np.array([float(flat[i])]),
        candidate=np.array([int(cand_idx[n])]),
        angle_deg=np.array([0.0 - wp.angle_deg + 0.0]),
        scale=np.array([wp.scale]),
        shift_y=np.array([-dy]),
        shift_x=np.array([-dx]),
    )


def transform_name(flip: bool, angle_deg: float, scale: float, shift_y: int, shift_x: int) -> str:
    """``identity``, or the parts of the match's transform joined by ``+`` (``hflip+rotate+zoom+shift``)."""
    parts = []
    if flip:
        parts.append("hflip")
    if angle_deg != 0.0:
        parts.append("rotate")
    if scale != 1.0:
        parts.append("zoom")
    if shift_y != 0 or shift_x != 0:
        parts.append("shift")
    return "+".join(parts) or "identity"
