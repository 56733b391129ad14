"""One registry from generator kind to its parts: config class, presets, trainer, size check and main loss.

The training loop (:mod:`synthgate.generators.loop`), sampling and the CLI ask the registry instead of branching
on the kind. To add a kind: a model config class with a ``kind`` class variable (``config.py``), its presets
(``presets.py``), a trainer class (``trainers.py``), and one :class:`GeneratorSpec` in :data:`GENERATORS`.

Torch-free: a spec's ``trainer`` imports the trainer module (and torch) only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from synthgate.errors import UsageError
from synthgate.generators.config import (
    DiffusionConfig,
    GeneratorKind,
    ModelConfig,
    StyleGAN2Config,
    TrainConfig,
    model_config_class,
)
from synthgate.generators.presets import PRESETS, Preset

if TYPE_CHECKING:
    import torch

    from synthgate.generators.trainers import Trainer

SizeCheck = Callable[[ModelConfig, int, int], "str | None"]


@dataclass(frozen=True)
class GeneratorSpec:
    """The parts of one generator kind.

    Attributes:
        kind: the generator kind.
        trainer: returns the trainer class (imports torch on call).
        size_problem: ``(model, height, width)`` -> why the model cannot take images of that size, or ``None``.
        main_loss: the loss reported as a run's ``final_loss``.
    """

    kind: GeneratorKind
    trainer: Callable[[], type[Trainer]]
    size_problem: SizeCheck
    main_loss: str

    @property
    def config_class(self) -> type[DiffusionConfig] | type[StyleGAN2Config]:
        """The model config class."""
        return model_config_class(self.kind)

    @property
    def presets(self) -> Mapping[Preset, TrainConfig]:
        """The named configurations of this kind."""
        return {name: PRESETS[(self.kind, name)] for name in Preset}


def _diffusion_trainer() -> type[Trainer]:
    from synthgate.generators.trainers import DiffusionTrainer

    return DiffusionTrainer


def _stylegan2_trainer() -> type[Trainer]:
    from synthgate.generators.trainers import StyleGAN2Trainer

    return StyleGAN2Trainer


def _diffusion_size(model: ModelConfig, h: int, w: int) -> str | None:
    assert isinstance(model, DiffusionConfig)
    m = model.size_multiple
    if h % m or w % m:
        return f"this diffusion U-Net needs sides divisible by {m}; ingest with --size a multiple of {m}"
    return None


def _stylegan2_size(model: ModelConfig, h: int, w: int) -> str | None:
    if h != w or h < 8 or h & (h - 1):
        return "stylegan2 needs square power-of-two sides >= 8; ingest with --size 64"
    return None


GENERATORS: Mapping[GeneratorKind, GeneratorSpec] = {
    GeneratorKind.DIFFUSION: GeneratorSpec(GeneratorKind.DIFFUSION, _diffusion_trainer, _diffusion_size, "loss"),
    GeneratorKind.STYLEGAN2: GeneratorSpec(GeneratorKind.STYLEGAN2, _stylegan2_trainer, _stylegan2_size, "loss_g"),
}


def generator_spec(kind: GeneratorKind | str) -> GeneratorSpec:
    """The parts of ``kind``.

    Raises:
        UsageError: unknown kind.
    """
    try:
        return GENERATORS[GeneratorKind(kind)]
    except ValueError:
        raise UsageError(f"unknown generator {kind!r}; use one of {', '.join(GeneratorKind)}") from None


def preset(kind: GeneratorKind | str, name: Preset | str = Preset.TINY) -> TrainConfig:
    """The named preset configuration of a generator kind.

    Raises:
        UsageError: unknown kind or preset.
    """
    try:
        key = (GeneratorKind(kind), Preset(name))
    except ValueError:
        raise UsageError(
            f"unknown generator {kind!r} or preset {name!r}; kinds: {', '.join(GeneratorKind)}, "
            f"presets: {', '.join(Preset)}"
        ) from None
    return generator_spec(key[0]).presets[key[1]]


def build_trainer(cfg: TrainConfig, shape: tuple[int, int, int], device: str | torch.device = "cpu") -> Trainer:
    """The trainer of ``cfg.kind`` for images of ``shape`` (C, H, W) on ``device``."""
    return generator_spec(cfg.kind).trainer()(cfg, shape, device)


__all__ = ["GENERATORS", "GeneratorSpec", "build_trainer", "generator_spec", "preset"]
