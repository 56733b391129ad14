"""Batched augmentation: the drawn distributions, MONAI's transforms as the reference, labels kept valid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthgate.errors import UsageError
from synthgate.segment.augment import (
    IDENTITY,
    AugmentParams,
    AugmentSpec,
    BatchAugment,
    apply_params,
    draw_params,
)
from synthgate.segment.data import SegmentationData

torch = pytest.importorskip("torch")


def _draws(spec: AugmentSpec, n: int = 20_000, size: tuple[int, int] = (64, 64)) -> AugmentParams:
    return draw_params(spec, n, size, torch.Generator().manual_seed(0))


def _rate_ok(mask: torch.Tensor, p: float) -> bool:
    """Within 5 binomial standard errors of ``p``."""
    n = mask.numel()
    return abs(float(mask.double().mean()) - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12


def test_draws_follow_the_configured_distributions() -> None:
    spec = AugmentSpec()
    d = _draws(spec)
    assert _rate_ok(d.flip[:, 0], 0.5) and _rate_ok(d.flip[:, 1], 0.5)
    assert _rate_ok(d.affine, 0.3)
    assert abs(float(d.rotation.abs().max()) - math.pi / 12) < 0.01 and float(d.rotation.abs().max()) <= math.pi / 12
    assert abs(float(d.rotation.mean())) < 0.01  # symmetric
    assert float(d.zoom.min()) >= 0.9 and float(d.zoom.max()) <= 1.1 and float(d.zoom.max()) > 1.099
    assert float(d.shift.abs().max()) <= 4.0 and float(d.shift.abs().max()) > 3.99  # 64 / 16 pixels
    assert _rate_ok(d.scale != 1, 0.5) and float((d.scale - 1).abs().max()) <= 0.1
    assert _rate_ok(d.offset != 0, 0.5) and float(d.offset.abs().max()) <= 0.05
    assert not bool((d.noise_std > 0).any())  # no noise by default, as before
    noisy = _draws(AugmentSpec(noise_prob=0.2, noise_std=0.1))
    assert _rate_ok(noisy.noise_std > 0, 0.2) and 0.099 < float(noisy.noise_std.max()) <= 0.1
    # the uniform angle: a quarter of the draws in each quarter of the range
    quarters = torch.histc(d.rotation, bins=4, min=-math.pi / 12, max=math.pi / 12) / len(d.rotation)
    assert bool(((quarters - 0.25).abs() < 0.02).all())


@pytest.mark.parametrize("size", [(32, 32), (32, 48)])
def test_affine_matches_monai(size: tuple[int, int]) -> None:
    from monai.transforms import Affine

    g = torch.Generator().manual_seed(1)
    x = torch.rand((4, 2, *size), generator=g)
    y = (torch.rand((4, 3, *size), generator=g) < 0.3).float()
    d = draw_params(AugmentSpec(affine_prob=1.0, flip_prob=0.0, scale_prob=0.0, shift_prob=0.0), 4, size, g)
    xa, ya = apply_params(x, y, d)
    for i in range(4):
        affine = Affine(
            rotate_params=float(d.rotation[i]),
            scale_params=d.zoom[i].tolist(),
            translate_params=d.shift[i].tolist(),
            padding_mode="zeros",
            image_only=True,
        )
        assert torch.allclose(torch.as_tensor(affine(x[i], mode="bilinear")), xa[i], atol=1e-5)
        assert torch.equal(torch.as_tensor(affine(y[i], mode="nearest")), ya[i])


def test_flips_and_intensity_match_a_per_sample_reference() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand((16, 2, 8, 8), generator=g), (torch.rand((16, 3, 8, 8), generator=g) < 0.5).float()
    d = draw_params(AugmentSpec(affine_prob=0.0), 16, (8, 8), g)
    xa, ya = apply_params(x, y, d)
    for i in range(16):
        xi, yi = x[i], y[i]
        for axis, dim in ((0, -2), (1, -1)):
            if d.flip[i, axis]:
                xi, yi = xi.flip(dim), yi.flip(dim)
        assert torch.allclose(xa[i], xi * float(d.scale[i]) + float(d.offset[i]), atol=1e-6)
        assert torch.equal(ya[i], yi)


def test_identity_settings_return_the_input() -> None:
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand((5, 2, 16, 16), generator=g), (torch.rand((5, 3, 16, 16), generator=g) < 0.5).float()
    xa, ya = BatchAugment(IDENTITY, seed=0)(x, y)
    assert torch.equal(xa, x) and torch.equal(ya, y)
    # an affine drawn with zero ranges is the identity too, through grid_sample
    flat = AugmentSpec(
        affine_prob=1.0, max_rotation=0.0, max_zoom=0.0, max_shift=0.0, flip_prob=0.0, scale_prob=0.0, shift_prob=0.0
    )
    xa, ya = BatchAugment(flat, seed=0)(x, y)
    assert torch.allclose(xa, x, atol=1e-6) and torch.equal(ya, y)


def test_seeded_labels_stay_valid_and_nested(tumour_set) -> None:  # type: ignore[no-untyped-def]
    data = SegmentationData((tumour_set(n_subjects=2, slices=8, size=32),), ("real",))
    x, y = (torch.from_numpy(a) for a in data.batch(np.arange(16)))
    spec = AugmentSpec(affine_prob=1.0, noise_prob=0.5, noise_std=0.05)
    xa, ya = BatchAugment(spec, 3)(x, y)
    xb, yb = BatchAugment(spec, 3)(x, y)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert xa.shape == x.shape and ya.shape == y.shape
    assert set(torch.unique(ya).tolist()) <= {0.0, 1.0}
    wt, tc, et = ya[:, 0].bool(), ya[:, 1].bool(), ya[:, 2].bool()
    assert bool((et <= tc).all()) and bool((tc <= wt).all())  # ET inside TC inside WT, as in the input
    assert not torch.equal(xa, x)
    assert not torch.equal(BatchAugment(spec, 4)(x, y)[0], xa)  # another seed, other draws
    aug = BatchAugment(spec, 3)
    aug(x, y)
    assert not torch.equal(aug(x, y)[0], xa)  # the next batch gets new draws


@pytest.mark.gpu
def test_cuda_gives_the_cpu_result() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand((8, 2, 32, 32), generator=g), (torch.rand((8, 3, 32, 32), generator=g) < 0.3).float()
    xc, yc = BatchAugment(AugmentSpec(), 7)(x, y)
    xg, yg = BatchAugment(AugmentSpec(), 7)(x.cuda(), y.cuda())
    assert torch.allclose(xg.cpu(), xc, atol=1e-4)
    assert float((yg.cpu() != yc).float().mean()) < 1e-3  # nearest ties may round apart


@pytest.mark.parametrize(
    "kwargs", [{"flip_prob": 1.5}, {"max_rotation": -0.1}, {"max_zoom": 1.0}, {"noise_std": float("nan")}]
)
def test_bad_specs_are_usage_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        AugmentSpec(**kwargs)  # type: ignore[arg-type]
