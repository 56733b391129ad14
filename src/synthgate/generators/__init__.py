"""Generators: a DDPM (MONAI ``DiffusionModelUNet``) and a StyleGAN2-class GAN on multi-channel MR slices.

The label channel is generated jointly with the MR channels and decoded to valid label values, so every
synthetic image comes with its segmentation. The registry (:data:`GENERATORS`) maps each kind to its config
class, presets, trainer, size check and main loss. Presets (:class:`Preset`):

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
    Schedule,
    StyleGAN2Config,
    TrainConfig,
)
from synthgate.generators.presets import Preset
from synthgate.generators.registry import GENERATORS, GeneratorSpec, generator_spec, preset
from synthgate.runtime import lazy_exports

if TYPE_CHECKING:
    from synthgate.generators.loop import TrainResult, train_generator
    from synthgate.generators.sample import sample_generator

_lazy = lazy_exports(
    __name__,
    {
        "train_generator": "synthgate.generators.loop",
        "TrainResult": "synthgate.generators.loop",
        "sample_generator": "synthgate.generators.sample",
    },
)


def __getattr__(name: str) -> Any:
    return _lazy(name)


__all__ = [
    "GENERATORS",
    "DiffusionConfig",
    "GeneratorKind",
    "GeneratorSpec",
    "Prediction",
    "Preset",
    "Schedule",
    "StyleGAN2Config",
    "TrainConfig",
    "TrainResult",
    "generator_spec",
    "preset",
    "sample_generator",
    "train_generator",
]
