"""The DDPM: MONAI ``DiffusionModelUNet``, linear and cosine schedules, epsilon/v objective, DDIM sampling.

Follows the tensors' device. Randomness comes from explicit ``torch.Generator`` objects so that training
resumes exactly and every sample can be regenerated from its own seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from synthgate.generators.config import DiffusionConfig, Prediction, Schedule


def build_unet(cfg: DiffusionConfig, channels: int) -> nn.Module:
    """The denoising U-Net for ``channels``-channel images (flash attention on)."""
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(
        spatial_dims=2,
        in_channels=channels,
        out_channels=channels,
        num_res_blocks=cfg.num_res_blocks,
        channels=cfg.channels,
        attention_levels=cfg.attention_levels,
        norm_num_groups=cfg.norm_groups,
        num_head_channels=cfg.head_channels,
        use_flash_attention=True,
    )


def alphas_cumprod(schedule: Schedule, timesteps: int) -> torch.Tensor:
    """``alpha_bar_t`` for t = 0..T-1 (float64).

    ``linear``: betas from 1e-4 to 0.02 scaled to T steps (Ho et al. 2020); ``cosine``: Nichol & Dhariwal
    2021 with s = 0.008 and betas clipped at 0.999.
    """
    if schedule is Schedule.LINEAR:
        scale = 1000.0 / timesteps
        betas = torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), timesteps, dtype=torch.float64)
    else:
        s = 0.008
        t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1.0 - betas, dim=0)


@dataclass(frozen=True)
class DiffusionLoss:
    """One training step's loss and what it was computed from."""

    loss: torch.Tensor
    timesteps: torch.Tensor


def training_loss(
    model: nn.Module, x0: torch.Tensor, abar: torch.Tensor, prediction: Prediction, gen: torch.Generator
) -> DiffusionLoss:
    """The DDPM objective: noise ``x0`` at uniform random t and regress epsilon (or v) with MSE.

    ``gen`` lives on ``x0``'s device (the trainer seeds one there every step), so the noise is drawn where it
    is used, in ``x0``'s memory layout.
    """
    n = x0.shape[0]
    t = torch.randint(0, len(abar), (n,), generator=gen, device=x0.device)
    noise = torch.empty_like(x0).normal_(generator=gen)
    a = abar.to(x0.device)[t].float().view(n, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    target = noise if prediction is Prediction.EPSILON else a.sqrt() * noise - (1 - a).sqrt() * x0
    out = model(xt, timesteps=t)
    return DiffusionLoss(loss=(out.float() - target).pow(2).mean(), timesteps=t)


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """``steps`` evenly spaced timesteps from T-1 down to 0."""
    return sorted({round(x) for x in torch.linspace(0, timesteps - 1, steps).tolist()}, reverse=True)


def seed_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample seed (its first draw is the sample's x_T)."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    seeds: Sequence[int],
    shape: tuple[int, int, int],
    abar: torch.Tensor,
    prediction: Prediction,
    steps: int,
    eta: float = 0.0,
    device: str | torch.device = "cpu",
    autocast: bool = False,
) -> torch.Tensor:
    """DDIM sampling (Song et al. 2021); sample i depends only on ``seeds[i]``.

    Each sample draws its initial noise (and, for ``eta > 0``, its per-step noise) from its own generator,
    so a sample regenerates from its seed whatever batch it is in. Predicted x0 is clipped to [-1, 1].

    Returns:
        len(seeds) x C x H x W tensor in [-1, 1] (float32, on ``device``).
    """
    gens = seed_generators(seeds)
    x = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)
    a_all = abar.to(device)
    ts = ddim_timesteps(len(abar), steps)
    for i, t in enumerate(ts):
        a = a_all[t].float()
        a_prev = a_all[ts[i + 1]].float() if i + 1 < len(ts) else torch.ones((), device=device)
        tt = torch.full((x.shape[0],), t, device=device, dtype=torch.long)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            out = model(x, timesteps=tt).float()
        if prediction is Prediction.EPSILON:
            x0 = (x - (1 - a).sqrt() * out) / a.sqrt()
        else:
            x0 = a.sqrt() * x - (1 - a).sqrt() * out
        x0 = x0.clamp(-1, 1)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp(min=0).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0 and i + 1 < len(ts):
            z = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)
            x = x + sigma * z
    return x
