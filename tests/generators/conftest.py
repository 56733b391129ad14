"""Generator test fixtures: the shared brain-pattern set (:mod:`tests.sets`) and a very small model config."""

from __future__ import annotations

import pytest

from synthgate.data.imageset import ImageSet
from tests import sets


@pytest.fixture
def tiny_set() -> ImageSet:
    return sets.make_set(8, pattern="brain")


def tiny_config(kind: str, steps: int = 6, **overrides: object) -> object:
    """A very small model of ``kind`` for 16 px tests (seconds on a CPU)."""
    from dataclasses import replace

    from synthgate.generators import DiffusionConfig, StyleGAN2Config, TrainConfig

    model: DiffusionConfig | StyleGAN2Config
    if kind == "diffusion":
        model = DiffusionConfig(
            channels=(8, 16),
            attention_levels=(False, True),
            norm_groups=4,
            head_channels=8,
            timesteps=100,
            sample_steps=5,
        )
    else:
        model = StyleGAN2Config(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16, r1_every=2)
    cfg = TrainConfig(
        kind=kind, model=model, steps=steps, batch_size=4, lr=2e-3, grid_every=0, checkpoint_every=0, log_every=1
    )
    return replace(cfg, **overrides)
