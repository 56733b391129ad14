"""Generators: a DDPM (MONAI ``DiffusionModelUNet``) and a StyleGAN2-class GAN on multi-channel MR slices.

The label channel is generated jointly with the MR channels and decoded to valid label values, so every
synthetic image comes with its segmentation. Presets (:class:`Preset`):

* ``tiny``: 32-64 px on a CPU in minutes (tests, the demo);
* ``memorize``: the tiny model on 4 training images for long enough to copy them (the study's finding);
* ``paper``: the study's scale, 256 px and 4000 diffusion steps, for a GPU.

Importing this package does not import torch; ``train_generator``, ``sample_generator`` and the result types
load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthgate.generators.config import (
    DiffusionConfig,
    GeneratorKind,
    Prediction,
    Preset,
    Schedule,
    StyleGAN2Config,
    TrainConfig,
)
from synthgate.generators.presets import preset

if TYPE_CHECKING:
    from synthgate.generators.sample import sample_generator
    from synthgate.generators.train import TrainProgress, TrainResult, train_generator

_LAZY = {
    "train_generator": "synthgate.generators.train",
    "TrainResult": "synthgate.generators.train",
    "TrainProgress": "synthgate.generators.train",
    "sample_generator": "synthgate.generators.sample",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DiffusionConfig",
    "GeneratorKind",
    "Prediction",
    "Preset",
    "Schedule",
    "StyleGAN2Config",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "preset",
    "sample_generator",
    "train_generator",
]
