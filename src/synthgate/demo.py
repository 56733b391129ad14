"""The end-to-end demo on the built-in phantom cohort (``synthgate demo``), through :mod:`synthgate.pipeline`.

phantom cohort -> ingest (subject split) -> train a small diffusion model, watched by the memorization monitor
-> sample -> memorization audit calibrated on the holdout -> utility audit -> release build under the default
policy -> ``verify`` with the re-audit (which loads the bundle with ``datasets.load_dataset``). Every outcome
comes from the real checks; nothing is scripted.

* ``default``: 40 phantom subjects with tumour radii x2 (at 32 px the default tumours give a training slice 0.4
  necrotic and 4 enhancing pixels on average, x2 gives 2.2 and 17), ingested at 32 px (449 training slices of 24
  subjects); a 16-32-32 channel U-Net trained on every training slice for 2000 steps, with the monitor's
  ``stop_on`` at the policy's flagged-fraction limit (the run keeps the last checkpoint whose monitored batch
  stayed at or below it); 448 samples.
* ``memorizing``: the ``memorize`` preset trains the same small U-Net on 4 training slices until it copies
  them; the monitor only watches. Expected: a refusal by the memorization checks (exit 3).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthgate import __version__
from synthgate.atomic import atomic_write_text
from synthgate.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from synthgate.data.imageset import ImageSet
    from synthgate.release.policy import ReleasePolicy

logger = logging.getLogger(__name__)

DEMO_JSON = "demo.json"


class Scenario(StrEnum):
    """``default``: a small generator trained on the whole training split; ``memorizing``: overfitted on 4 images."""

    DEFAULT = "default"
    MEMORIZING = "memorizing"


class Decision(StrEnum):
    """How the demo ended: ``release`` (exit 0), ``refuse`` (exit 3) or ``verify-failed`` (exit 4)."""

    RELEASE = "release"
    REFUSE = "refuse"
    VERIFY_FAILED = "verify-failed"

    @property
    def exit_code(self) -> int:
        return {"release": ExitCode.OK, "refuse": ExitCode.GATE_REFUSED, "verify-failed": ExitCode.INTEGRITY}[self]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and budgets of the demo (see the module docstring for what each scenario trains).

    Attributes:
        scenario: which generator to train.
        subjects: phantom subjects (split 60/20/20 into train, holdout, test).
        volume_shape: phantom volume size X, Y, Z.
        tumour_scale: phantom tumour radii factor.
        size: slice size in pixels.
        generator_steps: training steps; ``None``: 2000 for ``default``, 1000 for ``memorizing`` (its monitor
            flagged 6 of 32 samples at step 750, rising).
        generator_seconds: wall-clock cap of generator training (it stops at its steps or here); ``None``: none.
        n_synthetic: images sampled (about the real training set's size, so that the utility audit trains the
            synthetic-trained network for as many steps as the real-trained reference).
        sample_steps: DDIM steps when sampling.
        monitor_every: steps between two memorization checks of the monitor.
        monitor_samples: images the monitor samples and audits at each check.
        utility_epochs: epochs of each segmentation run of the utility audit.
        seed: seeds the cohort, the split, the generator and the sampling.
    """

    scenario: Scenario = Scenario.DEFAULT
    subjects: int = 40
    volume_shape: tuple[int, int, int] = (64, 64, 48)
    tumour_scale: float = 2.0
    size: int = 32
    generator_steps: int | None = None
    generator_seconds: float | None = None
    n_synthetic: int = 448
    sample_steps: int = 20
    monitor_every: int = 250
    monitor_samples: int = 32
    utility_epochs: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scenario", Scenario(self.scenario))
        if self.subjects < 5:
            raise UsageError(f"demo subjects must be >= 5 (train, holdout and test need subjects), got {self.subjects}")
        if self.generator_steps is None:
            object.__setattr__(self, "generator_steps", 1000 if self.scenario is Scenario.MEMORIZING else 2000)
        for name in ("generator_steps", "n_synthetic", "sample_steps", "monitor_every", "monitor_samples",
                     "utility_epochs"):
            if getattr(self, name) <= 0:
                raise UsageError(f"demo {name} must be > 0, got {getattr(self, name)}")
        if self.generator_seconds is not None and self.generator_seconds <= 0:
            raise UsageError(f"demo generator_seconds must be > 0, got {self.generator_seconds}")


@dataclass(frozen=True)
class DemoResult:
    """What the demo did.

    Attributes:
        out: the demo folder.
        scenario: the scenario run.
        decision: release, refuse or verify-failed; ``exit_code`` follows it (0, 3, 4).
        reasons: the failing gate checks on a refusal, the failing verify steps on a verify failure.
        paths: where each output is (``public_report`` and ``card`` on a release).
        timings: wall seconds per stage.
        cpu: CPU seconds per stage (this process, every thread).
        facts: figures worth printing (generator steps, flagged count, utility ratios, the monitor, ...).
    """

    out: Path
    scenario: Scenario
    decision: Decision
    reasons: tuple[str, ...]
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return self.decision.exit_code

    def to_json(self) -> dict[str, Any]:
        return {
            "synthgate_version": __version__,
            "scenario": str(self.scenario),
            "decision": str(self.decision),
            "exit_code": self.exit_code,
            "reasons": list(self.reasons),
            "paths": {k: str(v) for k, v in self.paths.items()},
            "timings_s": {k: round(v, 1) for k, v in self.timings.items()},
            "cpu_s": {k: round(v, 1) for k, v in self.cpu.items()},
            "facts": self.facts,
        }


def _out_dir(out: Path, overwrite: bool) -> None:
    if out.exists():
        if not overwrite:
            raise UsageError(f"--out {out} already exists; choose another --out or pass --overwrite")
        if not (out / DEMO_JSON).is_file() and any(out.iterdir()):
            raise UsageError(f"--out {out} exists and is not a synthgate demo folder; refusing to overwrite it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    # marks the folder as a demo's from the start, so an interrupted run can be replaced with --overwrite
    atomic_write_text(out / DEMO_JSON, json.dumps({"synthgate_version": __version__, "decision": None}) + "\n")


def demo_policy() -> ReleasePolicy:
    """The default policy; the phantom cohort is synthgate's own, free of any licence term, so CC0 in, CC-BY out."""
    from synthgate.release.policy import ReleasePolicy

    return ReleasePolicy(training_licence="cc0-1.0", output_licence="cc-by-4.0")


def generator_config(cfg: DemoConfig) -> Any:
    """The demo's generator: the ``tiny`` (``memorize``) diffusion preset with a 16-32-32 channel U-Net.

    At 32 px the preset's 32-64-64 U-Net takes 2.5x the CPU time per training step (0.37 s against 0.15 s on
    one core), which a 10-minute budget on 2 cores cannot pay for 2000 steps.
    """
    from synthgate.generators import DiffusionConfig, GeneratorKind, preset

    name = "memorize" if cfg.scenario is Scenario.MEMORIZING else "tiny"
    base = preset(GeneratorKind.DIFFUSION, name)
    model = base.model
    assert isinstance(model, DiffusionConfig)  # the diffusion preset
    model = replace(model, channels=(16, 32, 32), sample_steps=cfg.sample_steps)
    return base.with_overrides(model=model, steps=cfg.generator_steps, seed=cfg.seed,
                               checkpoint_every=cfg.monitor_every, grid_every=cfg.monitor_every * 2)


def trained_on(run_dir: Path, train_store: Path) -> ImageSet:
    """The images of ``train_store`` the generator run trained on (its ``training_images.csv``).

    The memorizing scenario trains on 4 of the split's slices: audited against all of them, its threshold is
    calibrated for a 100x larger search and its copies of those 4 are judged as if any slice could be matched.
    """
    from synthgate.generators.runs import TRAIN_IMAGES, read_training_ids
    from synthgate.pipeline import load

    train = load(train_store)
    seen = set(read_training_ids(run_dir / TRAIN_IMAGES))
    if len(seen) == len(train):
        return train
    return train.subset([i for i, image_id in enumerate(train.ids) if image_id in seen])


def run_demo(
    out: str | os.PathLike[str],
    config: DemoConfig | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    policy: ReleasePolicy | None = None,
) -> DemoResult:
    """Run the whole flow on the phantom cohort into ``out``.

    Args:
        out: demo folder (each stage writes its own sub-folder atomically; ``demo.json`` sums it up).
        config: sizes and budgets.
        device: torch device for the generator, the audits and the segmentation networks.
        overwrite: replace an existing demo folder.
        log: called with one line per stage.
        policy: the release rules; default :func:`demo_policy` (the command always uses it; tests reach both
            decisions at toy scale with other rules).

    Returns:
        The decision (``exit_code`` 0 release, 3 refusal, 4 verify failure) and where everything is.

    Raises:
        UsageError: ``out`` exists without ``overwrite``, or is not a demo folder.
    """
    from synthgate import pipeline
    from synthgate.audit.memorization import MemorizationConfig
    from synthgate.data.ingest import IngestConfig, SliceSelection
    from synthgate.data.phantom import write_phantom_cohort
    from synthgate.generators.monitor import MonitorConfig
    from synthgate.release.gate import ReleaseRefused
    from synthgate.release.policy import write_policy_template
    from synthgate.segment.utility import UtilityConfig

    cfg = config or DemoConfig()
    say = log or (lambda msg: logger.info("%s", msg))
    root = Path(out)
    _out_dir(root, overwrite)
    paths: dict[str, Path] = {}
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    facts: dict[str, Any] = {"scenario": str(cfg.scenario)}
    policy = policy or demo_policy()

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        say(f"[{name}] ...")
        yield
        timings[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0
        say(f"[{name}] done in {timings[name]:.0f} s")

    def finish(decision: Decision, reasons: tuple[str, ...] = ()) -> DemoResult:
        result = DemoResult(root, cfg.scenario, decision, reasons, paths, timings, cpu, facts)
        atomic_write_text(root / DEMO_JSON, json.dumps(result.to_json(), indent=2) + "\n")
        return result

    with stage("phantom"):
        paths["cohort"] = write_phantom_cohort(root / "cohort", cfg.subjects, seed=cfg.seed, shape=cfg.volume_shape,
                                               tumour_scale=cfg.tumour_scale)
    with stage("ingest"):
        ingested = pipeline.ingest(paths["cohort"], root / "stores",
                                   IngestConfig(size=cfg.size, slices=SliceSelection.TUMOUR, seed=cfg.seed))
    facts["ingest"] = ingested.counts
    train, holdout, test = (ingested.stores[s] for s in ("train", "holdout", "test"))
    paths.update({"train_store": train, "holdout_store": holdout, "test_store": test})

    memorizing = cfg.scenario is Scenario.MEMORIZING
    limit = policy.max_fraction_flagged_before_removal
    monitor = MonitorConfig(every=cfg.monitor_every, n_samples=cfg.monitor_samples, sample_steps=10, seed=cfg.seed,
                            stop_on=None if memorizing or limit >= 1.0 else limit)
    gen_cfg = generator_config(cfg)
    with stage("generator"):
        trained = pipeline.train(gen_cfg, train, root / "generator", device=device, max_time=cfg.generator_seconds,
                                 monitor=monitor, holdout=holdout)
    paths["generator"] = trained.result.run_dir
    facts["generator"] = {
        "kind": str(gen_cfg.kind),
        "preset": "memorize" if memorizing else "tiny",
        "channels": list(gen_cfg.model.channels),
        "steps": trained.result.steps,
        "planned_steps": gen_cfg.steps,
        "stopped_by": trained.result.stopped_by,
        "train_images": trained.result.n_train,
        "final_loss": round(float(trained.result.final_loss), 4),
        "monitor": trained.monitor,
    }
    with stage("sample"):
        sampled = pipeline.sample(trained.result.run_dir, cfg.n_synthetic, root / "synthetic", seed=cfg.seed,
                                  device=device, sample_steps=cfg.sample_steps)
    paths["synthetic"] = sampled.store
    facts["sample"] = {"n": sampled.n, "from_step": sampled.step}
    seen = trained_on(trained.result.run_dir, train)  # the audits' training set: what the generator saw

    with stage("audit"):
        audit = pipeline.audit_memorization(seen, sampled.store, holdout, root / "audit",
                                            MemorizationConfig(device=device))
    paths["audit"] = audit.out
    res = audit.result
    facts["audit"] = {
        "flagged": int(res.flagged.sum()),
        "audited": len(res.flagged),
        "fraction_flagged": round(res.fraction_flagged, 4),
        "train": res.counts["train"],
        "threshold": round(float(res.calibration.threshold), 4),
        "leaked_subjects": len(res.leaked_subjects),
    }
    with stage("utility"):
        # small phantom sets: more, smaller steps and no augmentation converge within the CPU budget
        ucfg = UtilityConfig.preset("quick", epochs=cfg.utility_epochs, batch_size=8, augment=False,
                                    seeds=(cfg.seed,))
        util = pipeline.audit_utility(sampled.store, train, test, root / "utility", ucfg, device=device)
    paths["utility"] = util.out
    facts["utility"] = {
        "ratio": {k: (None if v is None else round(float(v), 3)) for k, v in util.result.ratio.items()},
        "real_dice": {k: round(float(v), 3) for k, v in util.result.modes["real"].mean.items()},
        "synthetic_dice": {k: round(float(v), 3) for k, v in util.result.modes["synthetic"].mean.items()},
    }

    paths["policy"] = write_policy_template(root / "policy.toml", policy=policy)
    try:
        with stage("release"):
            built = pipeline.build(sampled.store, audit.out, util.out, policy, root / "bundle", train=seen)
    except ReleaseRefused as e:
        facts["checks"] = [c.to_json() for c in e.decision.checks]
        return finish(Decision.REFUSE, tuple(c.describe() for c in e.decision.failed))
    paths.update({"bundle": built.result.path, "public_report": built.result.report_html, "card": built.card})
    facts["released"] = built.result.n_released
    facts["checks"] = [c.to_json() for c in built.result.decision.checks]
    with stage("verify"):
        verified = pipeline.verify(built.result.path, train=seen)
    facts["verify"] = [c.to_json() for c in verified.checks]
    if not verified.ok:
        return finish(Decision.VERIFY_FAILED, tuple(f"{c.name}: {c.detail}" for c in verified.failed))
    return finish(Decision.RELEASE)
