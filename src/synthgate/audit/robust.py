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

from collections.abc import Sequence
from dataclasses import dataclass

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


def _warp(x: np.ndarray, warps: Sequence[Warp]) -> np.ndarray:
    """G x C x H x W: ``x`` (C x H x W) resampled by the inverse of each warp (bilinear, zero fill)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.array(x, dtype=np.float32))[None]
    theta = []
    for w in warps:
        a = np.deg2rad(w.angle_deg)
        # output(p) = input(A p): undo a rotation by +angle and a zoom by scale
        c, s = np.cos(a) / w.scale, np.sin(a) / w.scale
        theta.append([[c, -s, 0.0], [s, c, 0.0]])
    th = torch.tensor(theta, dtype=torch.float32)
    grid = F.affine_grid(th, [len(warps), *t.shape[1:]], align_corners=False)
    out = F.grid_sample(t.expand(len(warps), -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    out[0] = t[0] if warps[0].identity else out[0]
    return out.numpy()


def align(
    query: np.ndarray,
    candidates: np.ndarray,
    channels: Sequence[int],
    label_channel: int | None,
    warps: Sequence[Warp],
    max_shift: int,
) -> Alignment:
    """Best alignment of one query image with each of its candidate training images.

    Args:
        query: C x H x W synthetic image.
        candidates: n_c x C x H x W training images (already flipped where the candidate is a flipped entry).
        channels, label_channel: as for :func:`~synthgate.audit.features.pearson_features`.
        warps: rotations/zooms to try (:func:`make_warps`).
        max_shift: largest translation tried, in pixels, along each axis.

    Returns:
        :class:`Alignment` with one entry (the best over candidates).
    """
    import torch

    h, w = query.shape[-2:]
    qw = _warp(query, warps)
    qf = pearson_features(qw, channels, label_channel)
    cf = pearson_features(candidates, channels, label_channel)
    c = len(channels)
    fq = torch.fft.rfft2(torch.from_numpy(qf.vectors.reshape(len(warps), c, h, w)))
    fc = torch.fft.rfft2(torch.from_numpy(cf.vectors.reshape(len(candidates), c, h, w)))
    # corr[g, n, d] = sum_c sum_x q_g[c](x) t_n[c](x + d)
    prod = (fq.conj()[:, None] * fc[None]).sum(dim=2)
    corr = torch.fft.irfft2(prod, s=(h, w))
    ys = np.r_[0 : max_shift + 1, h - max_shift : h] if max_shift > 0 else np.r_[0:1]
    xs = np.r_[0 : max_shift + 1, w - max_shift : w] if max_shift > 0 else np.r_[0:1]
    ys, xs = np.unique(ys % h), np.unique(xs % w)
    win = corr[:, :, ys][:, :, :, xs]
    valid = torch.from_numpy(qf.valid)[:, None] & torch.from_numpy(cf.valid)[None, :]
    win = win.masked_fill(~valid[..., None, None], -torch.inf)
    flat = win.reshape(-1)
    best = int(torch.argmax(flat))
    g, n, iy, ix = np.unravel_index(best, win.shape)
    score = float(flat[best])
    # corr peaks at d where t(x + d) = q(x): the synthetic is the training image moved by -d
    dy = int(ys[iy]) if ys[iy] <= h // 2 else int(ys[iy]) - h
    dx = int(xs[ix]) if xs[ix] <= w // 2 else int(xs[ix]) - w
    ok = np.isfinite(score)
    return Alignment(
        score=np.array([score if ok else -np.inf]),
        candidate=np.array([int(n) if ok else -1]),
        angle_deg=np.array([-warps[g].angle_deg if ok else 0.0]),
        scale=np.array([warps[g].scale if ok else 1.0]),
        shift_y=np.array([-dy if ok else 0]),
        shift_x=np.array([-dx if ok else 0]),
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
