"""What differs between generator kinds: one optimisation step, the EMA weights, checkpoint state, sampling.

A trainer owns its networks and optimisers; the kind-independent loop in :mod:`synthgate.generators.loop` feeds it
batches in [-1, 1] and a CPU ``torch.Generator`` that supplies every random draw (so runs resume exactly). The
registry (:mod:`synthgate.generators.registry`) names each kind's trainer class.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from synthgate.generators import augment
from synthgate.generators.config import DiffusionConfig, GeneratorKind, StyleGAN2Config, TrainConfig
from synthgate.generators.diffusion import alphas_cumprod, build_unet, ddim_sample, training_loss
from synthgate.generators.stylegan2 import Discriminator, Generator


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(b)


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

    def _amp(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast)


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
        self.ema = _frozen_copy(self.model)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.abar = alphas_cumprod(self.mcfg.schedule, self.mcfg.timesteps)

    def step(self, batch: torch.Tensor, gen: torch.Generator, step: int) -> dict[str, float]:
        self.model.train()
        with self._amp():
            out = training_loss(self.model, batch, self.abar, self.mcfg.prediction, gen)
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        ema_update(self.ema, self.model, ema_decay_at(self.cfg.ema_decay, step))
        return {"loss": float(out.loss.detach())}

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
        self.G_ema = _frozen_copy(self.G)
        betas = (0.0, 0.99)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)

    def _z(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn((n, self.mcfg.z_dim), generator=gen).to(self.device)

    def _aug(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return augment.diffaugment(x, gen) if self.mcfg.diffaugment else x

    def step(self, batch: torch.Tensor, gen: torch.Generator, step: int) -> dict[str, float]:
        n = batch.shape[0]
        real = augment.mirror(batch, gen) if self.mcfg.mirror else batch
        self.G.train()
        self.D.train()
        # discriminator
        self.D.requires_grad_(True)
        with self._amp():
            with torch.no_grad():
                fake = self.G(self._z(n, gen), gen=gen)
            loss_d = (
                F.softplus(self.D(self._aug(fake.float(), gen))).mean()
                + F.softplus(-self.D(self._aug(real, gen))).mean()
            )
        r1 = torch.zeros((), device=self.device)
        if self.mcfg.r1_gamma > 0 and step % self.mcfg.r1_every == 0:
            x = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.D(x).sum(), x, create_graph=True)
            r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
        total_d = loss_d.float() + r1 * (self.mcfg.r1_gamma / 2 * self.mcfg.r1_every)
        self.opt_d.zero_grad(set_to_none=True)
        total_d.backward()
        self.opt_d.step()
        # generator
        self.D.requires_grad_(False)
        with self._amp():
            fake = self.G(self._z(n, gen), gen=gen)
            loss_g = F.softplus(-self.D(self._aug(fake.float(), gen))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.float().backward()
        self.opt_g.step()
        ema_update(self.G_ema, self.G, ema_decay_at(self.cfg.ema_decay, step))
        return {"loss_g": float(loss_g.detach()), "loss_d": float(loss_d.detach()), "r1": float(r1.detach())}

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

