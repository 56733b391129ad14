"""A compact StyleGAN2-class GAN (Karras et al. 2020) in plain torch.

Generator: mapping network -> styles; modulated + demodulated 3x3 convolutions with per-layer noise inputs;
"skip" architecture (an RGB-like output at every resolution, upsampled and summed). Discriminator: residual
blocks, minibatch standard deviation, a two-layer head. All layers use the equalised learning rate.

Simplifications against the reference implementation, kept on purpose for readability: bilinear up- and
average-pool down-sampling instead of FIR filters, one style vector for all layers (no style mixing), no path
length regularisation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from synthgate.generators.config import StyleGAN2Config

SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with StyleGAN's gain of sqrt(2): two kernels, the second in place (the backward of
    ``leaky_relu`` reads its input, not its output)."""
    return F.leaky_relu(x, 0.2).mul_(SQRT2)


def _bias_lrelu(x: torch.Tensor, bias: torch.Tensor, act: bool) -> torch.Tensor:
    """``x + bias`` (per channel) then the activation, adding in place: ``x`` must be a fresh result whose
    producer does not keep it for its backward (a convolution's output)."""
    x = x.add_(bias.to(x.dtype).view(1, -1, 1, 1))
    return _lrelu(x) if act else x


def feature_channels(cfg: StyleGAN2Config, resolution: int) -> int:
    """Feature channels at one resolution."""
    return max(1, min(cfg.channel_max, cfg.channel_base // resolution))


def check_resolution(size: int) -> int:
    """log2 of an image side that the GAN supports (a power of two >= 8), else ``ValueError``."""
    log2 = round(math.log2(size)) if size > 0 else 0
    if size < 8 or 2**log2 != size:
        raise ValueError(f"stylegan2 needs square images with a power-of-two side >= 8, got {size}")
    return log2


class EqualLinear(nn.Module):
    """Fully connected layer with the equalised learning rate (and an optional learning-rate multiplier)."""

    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(cin)
        self.lr_mul = lr_mul
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return _lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    """Convolution with the equalised learning rate; optional activation and 2x average-pool downsampling."""

    def __init__(self, cin: int, cout: int, k: int, bias: bool = True, act: bool = True, down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.act, self.down = act, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return _lrelu(x) if self.act else x


def modulated_conv2d(
    x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True
) -> torch.Tensor:
    """Per-sample modulated (and demodulated) convolution as one grouped convolution.

    Args:
        x: N x Cin x H x W.
        weight: Cout x Cin x k x k (already scaled).
        styles: N x Cin.
        demodulate: normalise each output filter of each sample to unit norm.
    """
    n, cin, h, w = x.shape
    cout, _, k, _ = weight.shape
    wgt = weight.unsqueeze(0) * styles.view(n, 1, cin, 1, 1)
    if demodulate:
        wgt = wgt * torch.rsqrt(wgt.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    out = F.conv2d(x.reshape(1, n * cin, h, w), wgt.reshape(n * cout, cin, k, k), padding=k // 2, groups=n)
    return out.reshape(n, cout, h, w)


class ModulatedLayer(nn.Module):
    """Style-modulated conv + noise + bias + activation (``rgb``: a 1x1 output layer, no demodulation)."""

    def __init__(self, cin: int, cout: int, w_dim: int, k: int = 3, rgb: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.rgb = rgb
        self.noise_strength = None if rgb else nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight * self.scale, styles, demodulate=not self.rgb)
        if self.noise_strength is not None and noise is not None:
            x = x.addcmul_(noise.to(x.dtype), self.noise_strength.to(x.dtype))
        return _bias_lrelu(x, self.bias, act=not self.rgb)


class MappingNetwork(nn.Module):
    """z -> w through normalisation and an MLP (learning-rate multiplier 0.01); tracks the mean w."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, w_avg_beta: float = 0.995):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=0.01, act=True) for a, b in itertools.pairwise(dims)])
        self.w_avg: torch.Tensor
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.w_avg_beta = w_avg_beta

    def forward(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        w = self.net(z)
        if self.training:
            self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if psi != 1.0:
            w = self.w_avg.to(w.dtype).lerp(w, psi)
        return w


class Generator(nn.Module):
    """Mapping network + skip-architecture synthesis network."""

    def __init__(self, cfg: StyleGAN2Config, channels: int, size: int):
        super().__init__()
        self.cfg, self.img_channels, self.size = cfg, channels, size
        log2 = check_resolution(size)
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers)
        c4 = feature_channels(cfg, 4)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        self.resolutions = [2**i for i in range(2, log2 + 1)]
        self.convs = nn.ModuleList()
        self.to_rgb = nn.ModuleList()
        cin = c4
        for r in self.resolutions:
            cout = feature_channels(cfg, r)
            pair = (
                [ModulatedLayer(cin, cout, cfg.w_dim)]
                if r == 4
                else [ModulatedLayer(cin, cout, cfg.w_dim), ModulatedLayer(cout, cout, cfg.w_dim)]
            )
            self.convs.append(nn.ModuleList(pair))
            self.to_rgb.append(ModulatedLayer(cout, channels, cfg.w_dim, k=1, rgb=True))
            cin = cout

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """Shape (1 x r x r) of the noise input of every modulated 3x3 layer, in order."""
        return [
            (1, r, r) for r, pair in zip(self.resolutions, self.convs, strict=True) for _ in cast(nn.ModuleList, pair)
        ]

    def draw_noise(self, n: int, gen: torch.Generator | None, device: torch.device) -> list[torch.Tensor]:
        """Noise inputs for a batch of ``n``, drawn where ``gen`` lives (the CPU without one), then moved to
        ``device``."""
        where = gen.device if gen is not None else torch.device("cpu")
        return [torch.randn((n, *s), generator=gen, device=where).to(device) for s in self.noise_shapes()]

    def forward(
        self,
        z: torch.Tensor,
        psi: float = 1.0,
        noise: Sequence[torch.Tensor] | None = None,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Images N x C x size x size from latents N x z_dim (noise from ``noise`` or drawn from ``gen``)."""
        w = self.mapping(z, psi=psi)
        if noise is None:
            noise = self.draw_noise(z.shape[0], gen, z.device)
        x = self.const.unsqueeze(0).expand(z.shape[0], -1, -1, -1)
        img: torch.Tensor | None = None
        k = 0
        for pair, to_rgb in zip(self.convs, self.to_rgb, strict=True):
            if img is not None:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            for layer in cast(nn.ModuleList, pair):
                x = layer(x, w, noise[k])
                k += 1
            y = to_rgb(x, w)
            img = y if img is None else F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + y
        assert img is not None
        return img


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append the mean standard deviation over groups of samples as one extra feature map.

    Sample i is in group ``i % (N // G)`` with G the largest divisor of N not above ``group``.
    """
    n, c, h, w = x.shape
    g = min(group, n)
    while n % g:
        g -= 1
    y = x.float().reshape(g, n // g, c, h, w)
    y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt().mean(dim=(1, 2, 3))
    y = y.view(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs, the second downsampling, plus a 1x1 downsampling skip; sum scaled by 1/sqrt(2)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3)
        self.conv1 = EqualConv2d(cin, cout, 3, down=True)
        self.skip = EqualConv2d(cin, cout, 1, bias=False, act=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) / SQRT2


class Discriminator(nn.Module):
    """Residual discriminator with a minibatch-std head; returns one logit per image."""

    def __init__(self, cfg: StyleGAN2Config, channels: int, size: int):
        super().__init__()
        log2 = check_resolution(size)
        self.mbstd_group = cfg.mbstd_group
        self.from_rgb = EqualConv2d(channels, feature_channels(cfg, size), 1)
        self.blocks = nn.Sequential(
            *[
                DiscriminatorBlock(feature_channels(cfg, 2**i), feature_channels(cfg, 2 ** (i - 1)))
                for i in range(log2, 2, -1)
            ]
        )
        c4 = feature_channels(cfg, 4)
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, act=True)
        self.out = EqualLinear(c4, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(img))
        x = self.conv(minibatch_std(x, self.mbstd_group))
        return self.out(self.fc(x.flatten(1))).squeeze(1)
