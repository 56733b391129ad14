"""Segmentation augmentation of a whole batch in one call, on the device the batch is on.

The distributions are those of the MONAI chain the trainer used before (``RandFlipd`` on each spatial axis,
``RandAffined``, ``RandScaleIntensityd``, ``RandShiftIntensityd``), but applied to a B x C x H x W batch at once:
flips as tensor flips, the affine as one ``affine_grid`` + ``grid_sample`` with one matrix per sample, intensity
scale and shift (and optional Gaussian noise) as broadcast arithmetic. Per-sample looping over MONAI dictionaries
on the host cost 6x the U-Net step on a GPU (issue 13).

The random parameters are drawn on the host from a seeded ``torch.Generator`` (a few numbers per sample), so a
seed gives the same augmentations on the CPU and on CUDA, and which samples need an affine is known without
reading anything back from the device. Targets are resampled with nearest neighbour, so binary region masks stay
binary and nested regions stay nested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synthgate.errors import UsageError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class AugmentSpec:
    """The augmentation distributions. The defaults are the trainer's former MONAI chain.

    Attributes:
        flip_prob: chance of a flip along each spatial axis (drawn independently per axis).
        affine_prob: chance of an affine transform.
        max_rotation: rotation angle uniform in +-this, radians.
        max_zoom: scale factor per axis uniform in ``1 +- max_zoom`` (MONAI's ``scale_range``; it scales the
            sampling grid, so factors above 1 shrink the content).
        max_shift: translation per axis uniform in +-this fraction of the shorter side (MONAI's
            ``translate_range`` of ``size / 16`` pixels).
        scale_prob: chance of multiplying the image by ``1 + u``, ``u`` uniform in +-``max_scale``.
        max_scale: see ``scale_prob``.
        shift_prob: chance of adding ``u`` uniform in +-``max_intensity_shift`` to the image.
        max_intensity_shift: see ``shift_prob``.
        noise_prob: chance of adding zero-mean Gaussian noise whose standard deviation is uniform in
            ``[0, noise_std]`` (MONAI ``RandGaussianNoise``; off by default, as it was).
        noise_std: see ``noise_prob``.
    """

    flip_prob: float = 0.5
    affine_prob: float = 0.3
    max_rotation: float = math.pi / 12
    max_zoom: float = 0.1
    max_shift: float = 1 / 16
    scale_prob: float = 0.5
    max_scale: float = 0.1
    shift_prob: float = 0.5
    max_intensity_shift: float = 0.05
    noise_prob: float = 0.0
    noise_std: float = 0.0

    def __post_init__(self) -> None:
        for name in ("flip_prob", "affine_prob", "scale_prob", "shift_prob", "noise_prob"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise UsageError(f"augmentation {name} must be in [0, 1], got {value}")
        for name in ("max_rotation", "max_zoom", "max_shift", "max_scale", "max_intensity_shift", "noise_std"):
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                raise UsageError(f"augmentation {name} must be finite and >= 0, got {value}")
        if self.max_zoom >= 1 or self.max_scale >= 1:
            raise UsageError(f"max_zoom and max_scale must be < 1, got {self.max_zoom}, {self.max_scale}")


#: Settings under which augmentation returns its input unchanged.
IDENTITY = AugmentSpec(flip_prob=0.0, affine_prob=0.0, scale_prob=0.0, shift_prob=0.0, noise_prob=0.0)


@dataclass(frozen=True, eq=False)
class AugmentParams:
    """One batch's draws (CPU tensors, one row per sample).

    Attributes:
        flip: B x 2 bool, flip along H and along W.
        affine: B bool, whether the affine applies.
        rotation: B angles (radians).
        zoom: B x 2 sampling-grid scale factors (H, W).
        shift: B x 2 translations in pixels (H, W).
        scale: B intensity factors (1 where not drawn).
        offset: B intensity offsets (0 where not drawn).
        noise_std: B noise standard deviations (0 where not drawn).
    """

    flip: torch.Tensor
    affine: torch.Tensor
    rotation: torch.Tensor
    zoom: torch.Tensor
    shift: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor
    noise_std: torch.Tensor


def draw_params(spec: AugmentSpec, n: int, size: tuple[int, int], generator: torch.Generator) -> AugmentParams:
    """Draw the parameters of ``n`` samples of ``size`` (H, W) images from ``spec`` with ``generator`` (CPU)."""
    import torch

    def uniform(shape: tuple[int, ...], half: float) -> torch.Tensor:
        return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * half

    def coin(p: float) -> torch.Tensor:
        return torch.rand(n, generator=generator, dtype=torch.float64) < p

    flip = torch.rand((n, 2), generator=generator, dtype=torch.float64) < spec.flip_prob
    affine = coin(spec.affine_prob)
    rotation = uniform((n,), spec.max_rotation)
    zoom = 1 + uniform((n, 2), spec.max_zoom)
    shift = uniform((n, 2), spec.max_shift * min(size))
    scale = torch.where(coin(spec.scale_prob), 1 + uniform((n,), spec.max_scale), 1.0)
    offset = torch.where(coin(spec.shift_prob), uniform((n,), spec.max_intensity_shift), 0.0)
    noise_std = torch.where(coin(spec.noise_prob), torch.rand(n, generator=generator, dtype=torch.float64), 0.0)
    return AugmentParams(flip, affine, rotation, zoom, shift, scale, offset, noise_std * spec.noise_std)


def affine_theta(params: AugmentParams, size: tuple[int, int]) -> torch.Tensor:
    """B x 2 x 3 ``affine_grid`` matrices (float64) of the draws, matching MONAI's ``RandAffine``.

    MONAI maps an output pixel ``p`` (H, W order, centred, in pixels) to the input point ``R (S p + t)``. With
    ``align_corners=False`` a centred pixel coordinate is ``u * d / 2`` in the normalised coordinate ``u`` of an
    axis of ``d`` pixels, and ``affine_grid`` orders axes (W, H).
    """
    import torch

    h, w = size
    cos, sin = torch.cos(params.rotation), torch.sin(params.rotation)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # B x 2 x 2, (H, W)
    lin = rot * params.zoom[:, None, :]  # R @ diag(zoom)
    trans = (rot @ params.shift[:, :, None])[..., 0]  # R t, pixels
    half = torch.tensor([h / 2, w / 2], dtype=torch.float64)
    lin = lin * half[None, None, :] / half[None, :, None]  # to normalised coordinates
    trans = trans / half
    perm = [1, 0]  # (H, W) -> (x = W, y = H)
    return torch.cat([lin[:, perm][:, :, perm], trans[:, perm, None]], dim=2)


def apply_params(
    x: torch.Tensor,
    y: torch.Tensor,
    params: AugmentParams,
    noise_generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment images ``x`` (B x C x H x W, float) and targets ``y`` (B x K x H x W) with ``params``.

    Targets take the flips and the affine (nearest neighbour), not the intensity changes. Runs where ``x`` is;
    nothing is read back to the host.
    """
    import torch
    import torch.nn.functional as F

    device = x.device

    def to_dev(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        if device.type == "cuda":
            t = t.pin_memory()
        return t.to(device=device, dtype=dtype, non_blocking=True)

    x, y = x.clone(), y.clone()  # the caller's batch stays as it was; below, everything is in place
    for dims in ((-2,), (-1,), (-2, -1)):  # samples flipped along H only, W only, both
        want = (params.flip[:, 0] == (-2 in dims)) & (params.flip[:, 1] == (-1 in dims))
        sel = torch.nonzero(want).flatten()
        if len(sel):
            idx = to_dev(sel)
            x.index_copy_(0, idx, x.index_select(0, idx).flip(dims))
            y.index_copy_(0, idx, y.index_select(0, idx).flip(dims))
    sel = torch.nonzero(params.affine).flatten()
    if len(sel):
        idx = to_dev(sel)
        theta = to_dev(affine_theta(params, tuple(x.shape[-2:]))[sel], x.dtype)  # type: ignore[arg-type]
        grid = F.affine_grid(theta, [len(sel), 1, *x.shape[-2:]], align_corners=False)
        xs = F.grid_sample(x.index_select(0, idx), grid, "bilinear", "zeros", align_corners=False)
        ys = F.grid_sample(y.index_select(0, idx).to(grid.dtype), grid, "nearest", "zeros", align_corners=False)
        x.index_copy_(0, idx, xs)
        y.index_copy_(0, idx, ys.to(y.dtype))
    if bool((params.scale != 1).any()) or bool((params.offset != 0).any()):
        shape = (-1, 1, 1, 1)
        x.mul_(to_dev(params.scale, x.dtype).view(shape)).add_(to_dev(params.offset, x.dtype).view(shape))
    if bool((params.noise_std > 0).any()):
        noise = torch.randn(x.shape, generator=noise_generator, device=device, dtype=x.dtype)
        x.addcmul_(noise, to_dev(params.noise_std, x.dtype).view(-1, 1, 1, 1))
    return x, y


class BatchAugment:
    """Seeded augmentation of batches on their device: ``x, y = augment(x, y)`` once per training step.

    Args:
        spec: the distributions.
        seed: seeds the parameter draws (on the host) and the noise (on the batch's device).
    """

    def __init__(self, spec: AugmentSpec, seed: int) -> None:
        import torch

        self.spec = spec
        self.seed = seed
        self._draws = torch.Generator().manual_seed(seed)
        self._noise: dict[str, torch.Generator] = {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if x.ndim != 4 or y.shape[0] != x.shape[0] or y.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"need B x C x H x W images and targets of one size, got {x.shape}, {y.shape}")
        params = draw_params(self.spec, len(x), (x.shape[-2], x.shape[-1]), self._draws)
        key = str(x.device)
        if key not in self._noise and self.spec.noise_prob > 0:
            self._noise[key] = torch.Generator(device=x.device).manual_seed(self.seed)
        return apply_params(x, y, params, self._noise.get(key))
