"""Named configurations of each generator kind: the :class:`Preset` enum and its table."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from synthgate.generators.config import (
    DiffusionConfig,
    GeneratorKind,
    Prediction,
    Schedule,
    StyleGAN2Config,
    TrainConfig,
)


class Preset(StrEnum):
    """Named configurations.

    * ``tiny``: tests and the demo; trains in minutes on 2 CPU cores at 32-64 px.
    * ``memorize``: the tiny diffusion model overfitted on a few training images (the study's memorization
      finding at small scale). For stylegan2 it is the tiny preset on the same few images.
    * ``paper``: the study's scale (256 px, 4000 diffusion steps), batch 64 to fill a large GPU; for a GPU.
    """

    TINY = "tiny"
    MEMORIZE = "memorize"
    PAPER = "paper"


PRESETS: Mapping[tuple[GeneratorKind, Preset], TrainConfig] = {
    (GeneratorKind.DIFFUSION, Preset.TINY): TrainConfig(
        kind=GeneratorKind.DIFFUSION,
        model=DiffusionConfig(prediction=Prediction.V),
        steps=400,
        batch_size=16,
        lr=2e-3,
        ema_decay=0.99,
        grid_every=200,
        checkpoint_every=200,
    ),
    (GeneratorKind.DIFFUSION, Preset.MEMORIZE): TrainConfig(
        kind=GeneratorKind.DIFFUSION,
        model=DiffusionConfig(prediction=Prediction.V),
        steps=3000,
        batch_size=8,
        lr=2e-3,
        ema_decay=0.99,
        max_images=4,
        grid_every=1000,
        checkpoint_every=250,
    ),
    (GeneratorKind.DIFFUSION, Preset.PAPER): TrainConfig(
        kind=GeneratorKind.DIFFUSION,
        model=DiffusionConfig(
            channels=(64, 128, 256, 256, 512),
            attention_levels=(False, False, False, True, True),
            num_res_blocks=2,
            norm_groups=32,
            head_channels=64,
            timesteps=4000,
            schedule=Schedule.LINEAR,
            sample_steps=250,
        ),
        steps=200_000,
        batch_size=64,  # fills an H100/H200 at 256 px with bf16 (batch 16: 90 img/s, 64: 106 img/s, issue 13)
        lr=1e-4,
        ema_decay=0.9999,
        grid_every=5000,
        checkpoint_every=5000,
        log_every=100,
    ),
    (GeneratorKind.STYLEGAN2, Preset.TINY): TrainConfig(
        kind=GeneratorKind.STYLEGAN2,
        model=StyleGAN2Config(z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64),
        steps=600,
        batch_size=16,
        lr=2.5e-3,
        ema_decay=0.99,
        grid_every=300,
        checkpoint_every=300,
    ),
    (GeneratorKind.STYLEGAN2, Preset.MEMORIZE): TrainConfig(
        kind=GeneratorKind.STYLEGAN2,
        model=StyleGAN2Config(
            z_dim=64,
            w_dim=64,
            mapping_layers=2,
            channel_base=1024,
            channel_max=64,
            diffaugment=False,
            mirror=False,
        ),
        steps=1500,
        batch_size=8,
        lr=2.5e-3,
        ema_decay=0.99,
        max_images=6,
        grid_every=500,
        checkpoint_every=500,
    ),
    (GeneratorKind.STYLEGAN2, Preset.PAPER): TrainConfig(
        kind=GeneratorKind.STYLEGAN2,
        model=StyleGAN2Config(
            z_dim=512, w_dim=512, mapping_layers=8, channel_base=32768, channel_max=512, r1_gamma=1.0
        ),
        steps=100_000,
        batch_size=64,  # StyleGAN2-ADA's batch at 256 px, with its learning rate
        lr=2.5e-3,
        ema_decay=0.999,
        grid_every=5000,
        checkpoint_every=5000,
        log_every=100,
    ),
}

