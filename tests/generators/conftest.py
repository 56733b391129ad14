"""Tiny seeded image sets for the generator tests: a bright disc ("brain") with a labelled blob ("tumour")."""

from __future__ import annotations

import numpy as np
import pytest

from synthgate.data.imageset import ImageSet
from synthgate.data.labels import BRATS2021


def make_set(n: int = 8, size: int = 16, channels: int = 3, seed: int = 0) -> ImageSet:
    """``channels - 1`` image channels in [0, 1] and a label channel with values 0, 1, 2, 4 (last)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / (size - 1) * 2 - 1
    images = np.zeros((n, channels, size, size), dtype=np.float32)
    for i in range(n):
        cy, cx = rng.uniform(-0.3, 0.3, 2)
        brain = (yy**2 + xx**2) < 0.7
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < 0.08
        core = ((yy - cy) ** 2 + (xx - cx) ** 2) < 0.03
        for c in range(channels - 1):
            images[i, c] = brain * (0.4 + 0.1 * c) + blob * 0.3
        lab = np.zeros((size, size), dtype=np.float32)
        lab[blob] = 2
        lab[core] = 1
        lab[core & (yy > cy)] = 4
        images[i, channels - 1] = lab
    return ImageSet(
        images=images,
        ids=tuple(f"img-{i:03d}" for i in range(n)),
        subjects=tuple(f"sub-{i // 2}" for i in range(n)),
        channels=(*(f"c{c}" for c in range(channels - 1)), "label"),
        label_channel=channels - 1,
        label_map=BRATS2021,
    )


@pytest.fixture
def tiny_set() -> ImageSet:
    return make_set()


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
