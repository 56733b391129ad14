"""Reading and ingest settings: what to do with invalid files, normalisation, slice selection, size, split."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from synthgate.data.store import StoreDtype, check_dtype
from synthgate.errors import UsageError


class OnError(StrEnum):
    """What a reader does with an invalid file (or ingest with an invalid subject)."""

    RAISE = "raise"
    SKIP = "skip"

    @classmethod
    def parse(cls, value: OnError | str) -> OnError:
        """``value`` as an :class:`OnError`; anything else is a usage error listing the choices."""
        try:
            return cls(value)
        except ValueError:
            raise UsageError(f"--on-error must be one of {', '.join(cls)}, got {value!r}") from None


class Normalisation(StrEnum):
    """Per-volume intensity normalisation (see the module docstring)."""

    ROBUST_MINMAX = "robust-minmax"
    ROBUST_MAX = "robust-max"
    ZSCORE = "zscore"
    NONE = "none"


class SliceSelection(StrEnum):
    """Which axial slices to keep."""

    BRAIN = "brain"  # at least min_brain_fraction brain pixels
    TUMOUR = "tumour"  # as BRAIN, and at least one tumour pixel


@dataclass(frozen=True)
class IngestConfig:
    """Ingest settings.

    Attributes:
        size: output H = W in pixels (slices are padded to a square, then resized).
        normalisation: per-volume intensity normalisation.
        min_brain_fraction: keep slices whose brain covers at least this fraction of the slice.
        slices: ``brain`` or ``tumour`` slice selection.
        split: fractions of SUBJECTS for train, holdout, test (sum 1).
        seed: seed of the subject split.
        labels: label convention (``None``: detected from the file names).
        dtype: store dtype (``float32`` or ``float16``).
    """

    size: int = 256
    normalisation: Normalisation = Normalisation.ROBUST_MINMAX
    min_brain_fraction: float = 0.15
    slices: SliceSelection = SliceSelection.BRAIN
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0
    labels: str | None = None
    dtype: StoreDtype | str = StoreDtype.FLOAT32
    percentiles: tuple[float, float] = field(default=(0.5, 99.5))

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 2048:
            raise UsageError(f"--size must be between 8 and 2048 pixels, got {self.size}")
        if not 0.0 <= self.min_brain_fraction <= 1.0:
            raise UsageError(f"--min-brain must be a fraction in [0, 1], got {self.min_brain_fraction}")
        if len(self.split) != 3 or any(f < 0 for f in self.split) or abs(sum(self.split) - 1.0) > 1e-6:
            raise UsageError(f"--split must be three non-negative fractions summing to 1, got {self.split}")
        check_dtype(self.dtype)
        object.__setattr__(self, "normalisation", Normalisation(self.normalisation))
        object.__setattr__(self, "slices", SliceSelection(self.slices))
