"""Privacy-aware training: audit the generator for memorization while it trains.

Every ``every`` steps the training loop samples a fixed-seed batch from the EMA weights and hands it to
:class:`MemorizationMonitor`, which runs the memorization audit (:func:`~synthgate.audit.memorization.
run_memorization_audit`) of that batch against the training images, calibrated on a holdout, at small scale
(mirror-tolerant Pearson search by default). Each check gives a :class:`MonitorPoint`: the fraction flagged,
the highest score, the threshold, and two cheap fidelity figures against the training set (the distance of the
per-channel in-brain intensity histograms and of the tumour-size distributions). Points go into the run's
``log.jsonl`` (``{"step": N, "monitor": {...}}``) and a curve ``monitor.png``.

With ``stop_on`` set, training stops at the first check whose flagged fraction exceeds it, and the run keeps
the last checkpoint checked at or below it (:func:`choose_checkpoint`); ``monitor.json`` records which step was
kept and why, and samples drawn from the run carry that record into the release provenance.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthgate import __version__
from synthgate.atomic import atomic_write_bytes, atomic_write_text
from synthgate.data.imageset import ImageSet
from synthgate.errors import UsageError
from synthgate.generators.runs import CHECKPOINT, LOG, MONITOR_JSON, append_log

logger = logging.getLogger(__name__)

MONITOR_PNG = "monitor.png"
KEPT_CHECKPOINT = "checkpoint-kept.pt"
BRAIN_LEVEL = 0.02  # an image pixel above this in any MR channel is inside the head (backgrounds are 0)
HIST_BINS = 32
MAX_REFERENCE = 512  # training images in the fidelity reference (a fixed-seed sample)


@dataclass(frozen=True)
class MonitorConfig:
    """Settings of the memorization monitor.

    Attributes:
        every: audit every this many training steps (and at the last step).
        n_samples: images sampled at each check (fixed seeds, so checks differ only by the weights).
        sample_steps: DDIM steps of those samples (diffusion); ``None``: the run's own.
        stop_on: stop once the flagged fraction exceeds this and keep the last checkpoint at or below it;
            ``None``: only watch.
        transforms: geometric transforms the audit searches (``("hflip",)`` is fast at small scale).
        quantile: the audit's calibration quantile on the holdout.
        seed: derives the fixed sample seeds.
    """

    every: int = 200
    n_samples: int = 32
    sample_steps: int | None = 10
    stop_on: float | None = None
    transforms: tuple[str, ...] = ("hflip",)
    quantile: float = 0.99
    seed: int = 0

    def __post_init__(self) -> None:
        if self.every < 1:
            raise UsageError(f"--monitor-every must be >= 1, got {self.every}")
        if self.n_samples < 1:
            raise UsageError(f"monitor n_samples must be >= 1, got {self.n_samples}")
        if self.sample_steps is not None and self.sample_steps < 1:
            raise UsageError(f"monitor sample_steps must be >= 1, got {self.sample_steps}")
        if self.stop_on is not None and not 0.0 <= self.stop_on < 1.0:
            raise UsageError(f"--stop-on-memorization is a fraction in [0, 1), got {self.stop_on}")
        object.__setattr__(self, "transforms", tuple(str(t) for t in self.transforms))

    def seeds(self) -> list[int]:
        """The fixed per-sample seeds of every check."""
        from synthgate.generators.sample import sample_seeds

        return [int(s) for s in sample_seeds(self.n_samples, self.seed)]

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"transforms": list(self.transforms)}


@dataclass(frozen=True)
class MonitorPoint:
    """One check of the monitor.

    Attributes:
        step: training steps done when the batch was sampled.
        n: images audited.
        flagged: images at or above the threshold.
        fraction_flagged: ``flagged / n``.
        max_score: the highest best-match score of the batch.
        threshold: the audit's threshold (calibrated on the holdout).
        intensity_distance: mean over MR channels of the total-variation distance between the in-brain
            intensity histograms of the batch and of the training images (0 = same, 1 = disjoint).
        tumour_size_distance: Wasserstein-1 distance between the per-image tumour fractions (tumour pixels
            over head pixels) of the batch and of the training images.
    """

    step: int
    n: int
    flagged: int
    fraction_flagged: float
    max_score: float
    threshold: float
    intensity_distance: float
    tumour_size_distance: float | None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MonitorPoint:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Choice:
    """Which checkpoint a run keeps under ``--stop-on-memorization``.

    Attributes:
        kept_step: the step of the kept checkpoint (``None``: no check stayed at or below the limit).
        stop: training must stop now (a check passed the limit).
        reason: one sentence for the provenance.
    """

    kept_step: int | None
    stop: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def choose_checkpoint(points: Sequence[MonitorPoint], stop_on: float) -> Choice:
    """The last checked step before the flagged fraction first exceeds ``stop_on``.

    Args:
        points: the checks so far, in step order.
        stop_on: the largest flagged fraction allowed.

    Returns:
        A :class:`Choice`; ``stop`` is true once a check exceeded ``stop_on``.
    """
    kept: MonitorPoint | None = None
    for p in points:
        if p.fraction_flagged > stop_on:
            if kept is None:
                return Choice(None, True, f"the first check (step {p.step}) already flagged "
                              f"{p.fraction_flagged:.3f} > {stop_on}; no checkpoint stayed at or below the limit")
            return Choice(kept.step, True, f"step {p.step} flagged {p.fraction_flagged:.3f} > {stop_on}; kept step "
                          f"{kept.step}, the last check at or below (flagged {kept.fraction_flagged:.3f})")
        kept = p
    if kept is None:
        return Choice(None, False, "no check yet")
    return Choice(kept.step, False, f"no check exceeded {stop_on}; kept the last checked step {kept.step} "
                  f"(flagged {kept.fraction_flagged:.3f})")


def _head_mask(images: np.ndarray, image_channels: Sequence[int]) -> np.ndarray:
    return np.asarray(images[:, list(image_channels)].max(axis=1) > BRAIN_LEVEL)


def intensity_histograms(images: np.ndarray, image_channels: Sequence[int]) -> np.ndarray:
    """Per-channel normalised histograms (``len(image_channels)`` x ``HIST_BINS``) of the in-head pixels."""
    mask = _head_mask(images, image_channels)
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    out = np.zeros((len(image_channels), HIST_BINS))
    for k, c in enumerate(image_channels):
        counts, _ = np.histogram(np.clip(images[:, c][mask], 0.0, 1.0), bins=edges)
        out[k] = counts / max(1, counts.sum())
    return out


def tumour_fractions(images: np.ndarray, image_channels: Sequence[int], label_channel: int) -> np.ndarray:
    """Per image: tumour pixels (label > 0) over in-head pixels."""
    head = _head_mask(images, image_channels).reshape(len(images), -1).sum(axis=1)
    tumour = (np.rint(images[:, label_channel]) > 0).reshape(len(images), -1).sum(axis=1)
    return np.asarray(tumour / np.maximum(head, 1), dtype=np.float64)


class MemorizationMonitor:
    """Audits fixed-seed batches during training; remembers the curve; chooses the checkpoint to keep.

    Args:
        train: the images the generator trains on (what a copy would copy).
        holdout: real images of other subjects (calibrates the audit threshold).
        config: :class:`MonitorConfig`.
        run_dir: the run directory (``log.jsonl``, ``monitor.json``, ``monitor.png`` go there).
        device: torch device of the audit.
        points: checks made before a resume (from :func:`read_points`).
    """

    def __init__(self, train: ImageSet, holdout: ImageSet, config: MonitorConfig, run_dir: Path,
                 device: str = "cpu", points: Sequence[MonitorPoint] = ()) -> None:
        from synthgate.audit.memorization import MemorizationConfig

        self.train, self.holdout, self.config, self.run_dir = train, holdout, config, Path(run_dir)
        # whole-image Pearson only: the monitor is a cheap training signal; the release audit runs every score
        self.audit_config = MemorizationConfig(transforms=config.transforms, quantile=config.quantile,  # type: ignore[arg-type]
                                               device=device, seed=config.seed, scores=("pearson",))  # type: ignore[arg-type]
        self.points: list[MonitorPoint] = list(points)
        self.seeds = config.seeds()
        rows = np.arange(len(train))
        if len(rows) > MAX_REFERENCE:
            rows = np.sort(np.random.default_rng(config.seed).choice(rows, MAX_REFERENCE, replace=False))
        reference = train.read_rows(rows)
        self.image_channels = train.image_channels
        self.label_channel = train.label_channel
        self.reference_hist = intensity_histograms(reference, self.image_channels)
        self.reference_tumour = (None if self.label_channel is None
                                 else tumour_fractions(reference, self.image_channels, self.label_channel))

    def due(self, step: int, total: int) -> bool:
        """Whether ``step`` is a check: every ``every`` steps and at the last step."""
        return step % self.config.every == 0 or step == total

    def check(self, step: int, images: np.ndarray) -> MonitorPoint:
        """Audit a batch sampled at ``step`` (set values, ``n_samples`` x C x H x W) and record the point."""
        from synthgate.audit.memorization import run_memorization_audit

        n = len(images)
        batch = ImageSet(
            images=np.asarray(images, dtype=np.float32),
            ids=tuple(f"monitor-{i:04d}" for i in range(n)),
            subjects=("synthetic",) * n,
            channels=self.train.channels,
            label_channel=self.train.label_channel,
            label_map=self.train.label_map,
        )
        res = run_memorization_audit(self.train, batch, self.holdout, self.audit_config)
        hist = intensity_histograms(batch.images, self.image_channels)
        tv = float(0.5 * np.abs(hist - self.reference_hist).sum(axis=1).mean())
        size: float | None = None
        if self.label_channel is not None and self.reference_tumour is not None:
            from scipy.stats import wasserstein_distance

            size = float(wasserstein_distance(
                tumour_fractions(batch.images, self.image_channels, self.label_channel), self.reference_tumour))
        scores = res.synthetic.score[np.isfinite(res.synthetic.score)]
        point = MonitorPoint(
            step=int(step),
            n=n,
            flagged=int(res.flagged.sum()),
            fraction_flagged=float(res.fraction_flagged),
            max_score=float(scores.max()) if scores.size else float("nan"),
            threshold=float(res.calibration.threshold),
            intensity_distance=tv,
            tumour_size_distance=size,
        )
        self.points.append(point)
        logger.info("monitor step %d: %d/%d flagged (max score %.4f, threshold %.4f)", step, point.flagged, n,
                    point.max_score, point.threshold)
        return point

    def after_step(self, step: int, total: int, sample: Callable[[Sequence[int], int | None], np.ndarray],
                   save_checkpoint: Callable[[Path], None], final: bool = False) -> bool:
        """The training loop's hook after every step; returns whether training must stop.

        At a check (every ``every`` steps, the last step, and ``final``: the loop stops here for another reason,
        so the state it keeps is checked too): ``sample(seeds, sample_steps)`` gives the batch (set values), the
        point goes into ``log.jsonl``, and with ``stop_on`` a check at or below it saves the current state with
        ``save_checkpoint(path)`` as the kept checkpoint.
        """
        if not (final or self.due(step, total)):
            return False
        point = self.check(step, sample(self.seeds, self.config.sample_steps))
        append_log(self.run_dir / LOG, {"step": step, "monitor": point.to_json()})
        choice = self.choice()
        if choice is None:
            return False
        if not choice.stop:
            save_checkpoint(self.run_dir / KEPT_CHECKPOINT)
        return choice.stop

    def finish(self, step: int, stopped: bool) -> Choice | None:
        """After the loop: on a stop, the kept checkpoint becomes the run's checkpoint; write the record."""
        choice = self.choice()
        kept = self.run_dir / KEPT_CHECKPOINT
        if stopped and choice is not None and choice.kept_step is not None and kept.is_file():
            os.replace(kept, self.run_dir / CHECKPOINT)
        kept.unlink(missing_ok=True)  # not stopped: the run's own last checkpoint is the last one checked
        self.write(choice, step)
        return choice

    def choice(self) -> Choice | None:
        """The checkpoint decision so far (``None`` without ``stop_on``)."""
        if self.config.stop_on is None:
            return None
        return choose_checkpoint(self.points, self.config.stop_on)

    def write(self, final_choice: Choice | None, final_step: int) -> None:
        """Write ``monitor.json`` (settings, points, the kept checkpoint and why) and the ``monitor.png`` curve."""
        record = {
            "synthgate_version": __version__,
            "config": self.config.to_json(),
            "final_step": final_step,
            "kept": None if final_choice is None else final_choice.to_json(),
            "points": [p.to_json() for p in self.points],
        }
        atomic_write_text(self.run_dir / MONITOR_JSON, json.dumps(record, indent=2) + "\n")
        atomic_write_bytes(self.run_dir / MONITOR_PNG, plot_curve(self.points, self.config.stop_on, final_choice))


def read_points(log: Path) -> list[MonitorPoint]:
    """The monitor points recorded in a run's ``log.jsonl`` (for a resume)."""
    if not log.is_file():
        return []
    points = []
    for line in log.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if "monitor" in rec:
                points.append(MonitorPoint.from_json(rec["monitor"]))
    return points


def plot_curve(points: Sequence[MonitorPoint], stop_on: float | None, choice: Choice | None) -> bytes:
    """PNG of the flagged fraction, the max score and the fidelity figures over training steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p.step for p in points]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(steps, [p.fraction_flagged for p in points], "o-", label="fraction flagged")
    ax1.plot(steps, [p.max_score for p in points], "s--", label="max score")
    ax1.plot(steps, [p.threshold for p in points], ":", color="grey", label="threshold")
    if stop_on is not None:
        ax1.axhline(stop_on, color="r", lw=0.8, label=f"stop on {stop_on}")
    if choice is not None and choice.kept_step is not None:
        ax1.axvline(choice.kept_step, color="g", lw=0.8, label=f"kept step {choice.kept_step}")
    ax1.set_xlabel("training step")
    ax1.set_title("memorization (audit of a fixed-seed batch)")
    ax1.legend(fontsize=7)
    ax2.plot(steps, [p.intensity_distance for p in points], "o-", label="intensity histogram TV")
    ax2.plot(steps, [np.nan if p.tumour_size_distance is None else p.tumour_size_distance for p in points],
             "s-", label="tumour size W1")
    ax2.set_xlabel("training step")
    ax2.set_title("fidelity vs the training set (lower is closer)")
    ax2.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


