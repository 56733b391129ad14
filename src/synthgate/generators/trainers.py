"""What differs between generator kinds: one optimisation step, the EMA weights, checkpoint state, sampling.

A trainer owns its networks and optimisers; the kind-independent loop in :mod:`synthgate.generators.loop` feeds it
batches in [-1, 1] and the run's CPU ``torch.Generator``; one draw from it per step seeds the trainer's generator
on the device, which draws the step's noise (so runs resume exactly and nothing is sampled on the host). A step
returns its losses as device tensors and never waits for the device; the loop reads them every ``log_every``
steps. The registry (:mod:`synthgate.generators.registry`) names each kind's trainer class.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from synthgate.generators import augment
from synthgate.generators.config import DiffusionConfig, GeneratorKind, StyleGAN2Config, TrainConfig
from synthgate.generators.diffusion import alphas_cumprod, build_unet, ddim_sample, training_loss
from synthgate.generators.stylegan2 import Discriminator, Generator


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers are copied. One multi-tensor
    kernel each (``_foreach_lerp_``, ``_foreach_copy_``), not one per parameter."""
    ema_params: list[torch.Tensor] = list(ema.parameters())
    params = [p.detach() for p in model.parameters()]
    if len(ema_params) != len(params):
        raise ValueError("the EMA model and the model have different parameters")
    if params:
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    ema_buffers, buffers = list(ema.buffers()), list(model.buffers())
    if ema_buffers:
        torch._foreach_copy_(ema_buffers, buffers)


def adam(
    params: Sequence[nn.Parameter] | Any,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
) -> torch.optim.AdamW:
    """AdamW (Adam when ``weight_decay`` is 0) as one fused kernel where torch has one for the device (CUDA,
    and the CPU: there 2-5x faster than the multi-tensor version), else the multi-tensor (foreach) version."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    except RuntimeError:  # no fused kernel for this device or dtype
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay warmed up over the first steps: ``min(decay, (1 + t) / (10 + t))``."""
    return min(decay, (1.0 + step) / (10.0 + step))


M = TypeVar("M", bound=nn.Module)


def _frozen_copy(model: M) -> M:
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    return ema


class _Base:
    kind: GeneratorKind

    def __init__(self, cfg: TrainConfig, shape: tuple[int, int, int], device: str | torch.device):
        self.cfg, self.shape, self.device = cfg, shape, torch.device(device)
        self.autocast = cfg.bf16 and self.device.type == "cuda"
        self.channels_last = cfg.channels_last and self.device.type == "cuda"
        self._step_gen = torch.Generator(device=self.device)

    def _amp(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def _draws(self, gen: torch.Generator) -> torch.Generator:
        """This step's generator on the device, seeded by one draw from the run's CPU generator ``gen``: the
        step's noise is drawn where it is used (no host-side sampling, no copy) and a resumed run repeats it."""
        return self._step_gen.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))

    def _compiled(self, module: nn.Module) -> nn.Module:
        """``module`` through ``torch.compile`` when the config asks for it (its weights stay shared)."""
        return cast(nn.Module, torch.compile(module)) if self.cfg.compile else module

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class DiffusionTrainer(_Base):
    """DDPM training with MSE on epsilon or v; EMA weights for sampling."""

    kind = GeneratorKind.DIFFUSION

    def __init__(self, cfg: TrainConfig, shape: tuple[int, int, int], device: str | torch.device = "cpu"):
        super().__init__(cfg, shape, device)
        assert isinstance(cfg.model, DiffusionConfig)
        self.mcfg: DiffusionConfig = cfg.model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.model = build_unet(self.mcfg, shape[0]).to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.ema = _frozen_copy(self.model)
        self.opt = adam(self.model.parameters(), cfg.lr)
        self.abar = alphas_cumprod(self.mcfg.schedule, self.mcfg.timesteps).to(self.device)
        self._forward = self._compiled(self.model)

    def step(self, batch: torch.Tensor, gen: torch.Generator, step: int) -> dict[str, torch.Tensor]:
        """One optimisation step; the losses stay on the device (reading them is the caller's choice)."""
        self.model.train()
        with self._amp():
            out = training_loss(self._forward, self._layout(batch), self.abar, self.mcfg.prediction, self._draws(gen))
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        ema_update(self.ema, self.model, ema_decay_at(self.cfg.ema_decay, step))
        return {"loss": out.loss.detach()}

    def sample(
        self,
        seeds: Sequence[int],
        sample_steps: int | None = None,
        eta: float | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """Samples in [-1, 1] from the EMA weights (``truncation`` does not apply to diffusion)."""
        return ddim_sample(
            self.ema,
            seeds,
            self.shape,
            self.abar,
            self.mcfg.prediction,
            steps=sample_steps or self.mcfg.sample_steps,
            eta=self.mcfg.eta if eta is None else eta,
            device=self.device,
            autocast=self.autocast,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])


class StyleGAN2Trainer(_Base):
    """Non-saturating logistic GAN loss, lazy R1 on reals, mirror + DiffAugment, EMA generator."""

    kind = GeneratorKind.STYLEGAN2

    def __init__(self, cfg: TrainConfig, shape: tuple[int, int, int], device: str | torch.device = "cpu"):
        super().__init__(cfg, shape, device)
        assert isinstance(cfg.model, StyleGAN2Config)
        self.mcfg: StyleGAN2Config = cfg.model
        c, h, w = shape
        if h != w:
            raise ValueError(f"stylegan2 needs square images, got {h}x{w}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.G = Generator(self.mcfg, c, h).to(self.device)
            self.D = Discriminator(self.mcfg, c, h).to(self.device)
        if self.channels_last:  # the discriminator's plain convolutions (the generator's are grouped per sample)
            self.D.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.G_ema = _frozen_copy(self.G)
        betas = (0.0, 0.99)
        self.opt_g = adam(self.G.parameters(), cfg.lr, betas=betas)
        self.opt_d = adam(self.D.parameters(), cfg.lr, betas=betas)
        self._G, self._D = self._compiled(self.G), self._compiled(self.D)  # R1's double backward uses self.D

    def _z(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn((n, self.mcfg.z_dim), generator=gen, device=gen.device).to(self.device)

    def _aug(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self._layout(augment.diffaugment(x, gen) if self.mcfg.diffaugment else x)

    def step(self, batch: torch.Tensor, gen: torch.Generator, step: int) -> dict[str, torch.Tensor]:
        """One discriminator and one generator step (R1 every ``r1_every`` steps); the losses stay on the
        device."""
        n = batch.shape[0]
        g = self._draws(gen)
        real = augment.mirror(batch, g) if self.mcfg.mirror else batch
        self.G.train()
        self.D.train()
        # discriminator
        self.D.requires_grad_(True)
        with self._amp():
            with torch.no_grad():
                fake = self._G(self._z(n, g), gen=g)
            loss_d = (
                F.softplus(self._D(self._aug(fake.float(), g))).mean()
                + F.softplus(-self._D(self._aug(real, g))).mean()
            )
        r1 = torch.zeros((), device=self.device)
        if self.mcfg.r1_gamma > 0 and step % self.mcfg.r1_every == 0:
            x = self._layout(real.detach()).requires_grad_(True)
            (grad,) = torch.autograd.grad(self.D(x).sum(), x, create_graph=True)
            r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
        total_d = loss_d.float() + r1 * (self.mcfg.r1_gamma / 2 * self.mcfg.r1_every)
        self.opt_d.zero_grad(set_to_none=True)
        total_d.backward()
        self.opt_d.step()
        # generator
        self.D.requires_grad_(False)
        with self._amp():
            fake = self._G(self._z(n, g), gen=g)
            loss_g = F.softplus(-self._D(self._aug(fake.float(), g))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.float().backward()
        self.opt_g.step()
        ema_update(self.G_ema, self.G, ema_decay_at(self.cfg.ema_decay, step))
        return {"loss_g": loss_g.detach().float(), "loss_d": loss_d.detach().float(), "r1": r1.detach()}

    def sample(
        self,
        seeds: Sequence[int],
        sample_steps: int | None = None,
        eta: float | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """Samples from the EMA generator; sample i uses only ``seeds[i]`` (latent, then noise inputs)."""
        psi = self.mcfg.truncation if truncation is None else truncation
        zs, noises = [], []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            zs.append(torch.randn((1, self.mcfg.z_dim), generator=g))
            noises.append(self.G_ema.draw_noise(1, g, torch.device("cpu")))
        noise = [torch.cat(layer).to(self.device) for layer in zip(*noises, strict=True)]
        with torch.no_grad(), self._amp():
            return self.G_ema(torch.cat(zs).to(self.device), psi=psi, noise=noise).float().clamp(-1, 1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])


Trainer = DiffusionTrainer | StyleGAN2Trainer

