from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synthgate.generators import StyleGAN2Config
from synthgate.generators.augment import cutout, mirror, translate
from synthgate.generators.stylegan2 import (
    Discriminator,
    Generator,
    check_resolution,
    minibatch_std,
    modulated_conv2d,
)

CFG = StyleGAN2Config(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


def _modconv_reference(x, weight, styles, demodulate):
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].view(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt((w**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        outs.append(F.conv2d(x[i : i + 1], w, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("k", [1, 3])
def test_modulated_conv_matches_per_sample_loop(demodulate, k):
    g = torch.Generator().manual_seed(0)
    x = torch.randn((3, 4, 6, 6), generator=g)
    weight = torch.randn((5, 4, k, k), generator=g)
    styles = torch.randn((3, 4), generator=g)
    got = modulated_conv2d(x, weight, styles, demodulate=demodulate)
    torch.testing.assert_close(got, _modconv_reference(x, weight, styles, demodulate), atol=1e-5, rtol=1e-5)


def test_minibatch_std_matches_group_loop():
    x = torch.randn((6, 3, 4, 4), generator=torch.Generator().manual_seed(1))
    got = minibatch_std(x, group=3)
    assert got.shape == (6, 4, 4, 4)
    torch.testing.assert_close(got[:, :3], x)
    n_groups = 2
    for gi in range(n_groups):
        members = x[[i for i in range(6) if i % n_groups == gi]]
        expect = members.std(dim=0, unbiased=False).mean()
        for i in range(6):
            if i % n_groups == gi:
                torch.testing.assert_close(got[i, 3], torch.full((4, 4), float(expect)), atol=1e-4, rtol=1e-4)


def test_generator_and_discriminator_shapes_and_truncation():
    torch.manual_seed(0)
    G, D = Generator(CFG, channels=3, size=16), Discriminator(CFG, channels=3, size=16)
    z = torch.randn(4, 16)
    noise = G.draw_noise(4, torch.Generator().manual_seed(0), torch.device("cpu"))
    img = G(z, noise=noise)
    assert img.shape == (4, 3, 16, 16)
    assert D(img).shape == (4,)
    G.eval()
    # psi = 0 maps every latent to the mean w: all images equal given the same noise
    same = G(z, psi=0.0, noise=[n[:1].expand_as(n) for n in noise])
    torch.testing.assert_close(same[0], same[3])
    assert (G(z, noise=noise)[0] - G(z, noise=noise)[3]).abs().max() > 1e-4


def test_resolution_checks():
    assert check_resolution(64) == 6
    for bad in (4, 48, 0):
        with pytest.raises(ValueError, match="power-of-two"):
            check_resolution(bad)


def test_augmentations():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8) / 128
    m = mirror(x.repeat(50, 1, 1, 1), g)
    flipped = sum(bool(torch.equal(m[i], x[i % 2].flip(-1))) for i in range(100))
    assert 25 < flipped < 75
    t = translate(x, torch.Generator().manual_seed(1), ratio=0.25)
    assert t.shape == x.shape
    # every translated image is x shifted by some (dy, dx) with -1 padding: check by brute force
    for i in range(2):
        ok = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = torch.full_like(x[i], -1.0)
                ys, xs = slice(max(dy, 0), 8 + min(dy, 0)), slice(max(dx, 0), 8 + min(dx, 0))
                yt, xt = slice(max(-dy, 0), 8 + min(-dy, 0)), slice(max(-dx, 0), 8 + min(-dx, 0))
                ref[:, ys, xs] = x[i][:, yt, xt]
                ok |= torch.equal(ref, t[i])
        assert ok
    c = cutout(torch.zeros(4, 2, 8, 8), torch.Generator().manual_seed(2))
    masked = (c == -1).float().mean(dim=(1, 2, 3))
    assert torch.all(masked > 0) and torch.all(masked <= 0.25 + 1e-6)
