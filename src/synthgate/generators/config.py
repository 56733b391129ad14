"""Generator configurations: frozen, validated, written as ``config.json`` into every run directory.

Each model config names the generator kind it configures (``kind``); the registry
(:mod:`synthgate.generators.registry`) maps a kind to its config class, presets, trainer, size check and main loss.
Torch-free, so the CLI can list the choices without importing torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from synthgate.errors import UsageError


class GeneratorKind(StrEnum):
    """The generators synthgate trains."""

    DIFFUSION = "diffusion"
    STYLEGAN2 = "stylegan2"


class Prediction(StrEnum):
    """What the diffusion network predicts."""

    EPSILON = "epsilon"
    V = "v"


class Schedule(StrEnum):
    """Diffusion noise schedules."""

    LINEAR = "linear"
    COSINE = "cosine"


E = TypeVar("E", bound=StrEnum)


def _enum(cls: type[E], value: Any, name: str) -> E:
    try:
        return cls(value)
    except ValueError:
        raise UsageError(f"generator config: {name} {value!r} is not one of {', '.join(cls)}") from None


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise UsageError(f"generator config: {name} must be > 0, got {value}")


@dataclass(frozen=True)
class DiffusionConfig:
    """The DDPM: a MONAI ``DiffusionModelUNet`` and its noise schedule.

    Attributes:
        channels: feature channels per U-Net level; the image side must be divisible by 2**(levels-1).
        attention_levels: self-attention (flash attention) per level.
        num_res_blocks: residual blocks per level.
        norm_groups: group-norm groups (must divide every entry of ``channels``).
        head_channels: channels per attention head.
        timesteps: diffusion steps T of the training objective.
        schedule: ``linear`` (DDPM) or ``cosine`` (improved DDPM) beta schedule.
        prediction: ``epsilon`` or ``v`` prediction.
        sample_steps: DDIM steps when sampling.
        eta: DDIM stochasticity (0 = deterministic given the initial noise).
    """

    kind: ClassVar[GeneratorKind] = GeneratorKind.DIFFUSION

    channels: tuple[int, ...] = (32, 64, 64)
    attention_levels: tuple[bool, ...] = (False, False, True)
    num_res_blocks: int = 1
    norm_groups: int = 8
    head_channels: int = 32
    timesteps: int = 1000
    schedule: Schedule = Schedule.COSINE
    prediction: Prediction = Prediction.EPSILON
    sample_steps: int = 50
    eta: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "attention_levels", tuple(bool(a) for a in self.attention_levels))
        object.__setattr__(self, "schedule", _enum(Schedule, self.schedule, "schedule"))
        object.__setattr__(self, "prediction", _enum(Prediction, self.prediction, "prediction"))
        if len(self.channels) != len(self.attention_levels):
            raise UsageError(
                f"diffusion config: {len(self.channels)} channels but {len(self.attention_levels)} "
                "attention_levels; give one per level"
            )
        for c in self.channels:
            if c % self.norm_groups:
                raise UsageError(f"diffusion config: norm_groups {self.norm_groups} must divide channels {c}")
        for name in ("num_res_blocks", "head_channels", "timesteps", "sample_steps"):
            _positive(name, getattr(self, name))
        if self.sample_steps > self.timesteps:
            raise UsageError(f"diffusion config: sample_steps {self.sample_steps} exceeds timesteps {self.timesteps}")
        if not 0.0 <= self.eta <= 1.0:
            raise UsageError(f"diffusion config: eta must be in [0, 1], got {self.eta}")

    @property
    def size_multiple(self) -> int:
        """Image sides must be a multiple of this."""
        return 2 ** (len(self.channels) - 1)


@dataclass(frozen=True)
class StyleGAN2Config:
    """The StyleGAN2-class GAN.

    Attributes:
        z_dim: latent size.
        w_dim: intermediate latent (style) size.
        mapping_layers: layers of the mapping network.
        channel_base: feature channels at resolution r are ``min(channel_max, channel_base // r)``.
        channel_max: upper bound on feature channels.
        mbstd_group: minibatch standard-deviation group size.
        r1_gamma: R1 penalty weight.
        r1_every: lazy regularisation interval (R1 every this many steps, scaled up accordingly).
        mirror: random left-right flips of the training images.
        diffaugment: differentiable translation + cutout on real and fake images seen by the discriminator.
        truncation: default truncation psi at sampling (1 = none).
    """

    kind: ClassVar[GeneratorKind] = GeneratorKind.STYLEGAN2

    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    channel_base: int = 4096
    channel_max: int = 128
    mbstd_group: int = 4
    r1_gamma: float = 0.1
    r1_every: int = 16
    mirror: bool = True
    diffaugment: bool = True
    truncation: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "z_dim",
            "w_dim",
            "mapping_layers",
            "channel_base",
            "channel_max",
            "mbstd_group",
            "r1_every",
        ):
            _positive(name, getattr(self, name))
        if self.r1_gamma < 0:
            raise UsageError(f"stylegan2 config: r1_gamma must be >= 0, got {self.r1_gamma}")
        if not 0.0 <= self.truncation <= 1.0:
            raise UsageError(f"stylegan2 config: truncation must be in [0, 1], got {self.truncation}")


ModelConfig = DiffusionConfig | StyleGAN2Config


def model_config_class(kind: GeneratorKind) -> type[DiffusionConfig] | type[StyleGAN2Config]:
    """The model config class of ``kind`` (each class states its kind; this finds it)."""
    return next(c for c in (DiffusionConfig, StyleGAN2Config) if c.kind is kind)


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        kind: which generator.
        model: its architecture and objective.
        steps: optimisation steps of the full run.
        batch_size: images per step.
        lr: learning rate (Adam).
        ema_decay: EMA decay of the weights used for sampling (warmed up as ``min(decay, (1+t)/(10+t))``).
        seed: seeds the weights, the batches and the noise; a run is reproducible given its seed.
        max_images: train on at most this many images (a seeded choice), ``None`` = all; small values
            make a generator memorize.
        grid_every: write a PNG sample grid every this many steps (0 = only at the end).
        checkpoint_every: write a checkpoint every this many steps (and always at the end).
        log_every: append a line to the JSONL loss log every this many steps.
        bf16: bfloat16 autocast on CUDA (ignored on CPU).
        channels_last: NHWC memory layout for the convolutions on CUDA (tensor cores read it directly; ignored
            on CPU).
        compile: run the networks through ``torch.compile`` (pays on a GPU for long runs; on the CPU its
            compile time exceeds what it saves in a short run).
    """

    kind: GeneratorKind
    model: ModelConfig
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    ema_decay: float = 0.995
    seed: int = 0
    max_images: int | None = None
    grid_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 10
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(GeneratorKind, self.kind, "kind"))
        if getattr(self.model, "kind", None) is not self.kind:
            raise UsageError(
                f"generator config: kind {self.kind} needs a {model_config_class(self.kind).__name__}, "
                f"got a {type(self.model).__name__}"
            )
        for name in ("steps", "batch_size", "lr", "log_every"):
            _positive(name, getattr(self, name))
        if not 0.0 <= self.ema_decay < 1.0:
            raise UsageError(f"generator config: ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.max_images is not None and self.max_images < 1:
            raise UsageError(f"generator config: max_images must be >= 1, got {self.max_images}")
        if self.grid_every < 0 or self.checkpoint_every < 0:
            raise UsageError("generator config: grid_every and checkpoint_every must be >= 0")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as strings)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from :meth:`to_json` output; unknown keys are a usage error naming them."""
        data = dict(data)
        data.pop("synthgate_version", None)
        kind = _enum(GeneratorKind, data.get("kind", ""), "kind")
        model_cls = model_config_class(kind)
        model_data = dict(data.pop("model", {}) or {})
        _check_keys(model_cls, model_data, "model")
        _check_keys(cls, data, "")
        for k, v in model_data.items():
            if isinstance(v, list):
                model_data[k] = tuple(v)
        return cls(**{**data, "kind": kind, "model": model_cls(**model_data)})

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the non-``None`` overrides applied (top-level fields only)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _check_keys(cls: type, data: dict[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        prefix = f"{where}." if where else ""
        raise UsageError(
            f"generator config: unknown keys {sorted(prefix + k for k in unknown)}; "
            f"known: {sorted(prefix + k for k in known)}"
        )


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, StrEnum):
        return str(v)
    return v


__all__ = [
    "DiffusionConfig",
    "GeneratorKind",
    "ModelConfig",
    "Prediction",
    "Schedule",
    "StyleGAN2Config",
    "TrainConfig",
    "model_config_class",
]
