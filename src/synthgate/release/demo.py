"""The end-to-end demo on the built-in phantom cohort (``synthgate demo``).

phantom cohort -> ingest (subject split) -> train a tiny generator -> sample -> memorization audit with a
holdout -> utility audit -> release build (the default policy) -> verify with a re-audit. Every outcome comes
from the real checks; nothing is scripted. The ``memorizing`` scenario trains the same generator on a handful
of training images (the ``memorize`` preset) so that it copies them, and the gate is expected to refuse.

A stage whose module is not installed is reported as missing and the stages that need it are skipped.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from synthgate import __version__
from synthgate.atomic import atomic_write_text
from synthgate.errors import GateRefused, UsageError

logger = logging.getLogger(__name__)

STAGES = ("phantom", "ingest", "generator", "sample", "audit", "utility", "release", "verify")
_MODULES = {
    "phantom": "synthgate.data.phantom",
    "ingest": "synthgate.data.ingest",
    "generator": "synthgate.generators.loop",
    "sample": "synthgate.generators.sample",
    "audit": "synthgate.audit.memorization",
    "utility": "synthgate.segment.utility",
}


class Scenario(StrEnum):
    """``default``: a tiny generator trained on the whole training split; ``memorizing``: overfitted on a few."""

    DEFAULT = "default"
    MEMORIZING = "memorizing"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and budgets of the demo (defaults take about 7 minutes on 2 idle CPU cores).

    Attributes:
        scenario: which generator to train.
        subjects: phantom subjects (split 60/20/20 into train, holdout, test).
        volume_shape: phantom volume size X, Y, Z.
        size: slice size in pixels.
        generator_steps: training steps of the generator; ``None``: 2000 for ``default`` (the tiny preset's 400
            steps give brains without tumours: measured synthetic/real Dice 0.19 / 0 / 0, against 1.03 / 0.77 /
            0.81 after 2000 steps) and the ``memorize`` preset's 3000 for ``memorizing``.
        generator_seconds: wall-clock budget of generator training (it stops at its steps or here); ``None``:
            420 s (both scenarios' steps take about 6-7 minutes on 2 idle CPU cores at 32 px).
        n_synthetic: images sampled.
        sample_steps: DDIM sampling steps.
        utility_epochs: epochs of each segmentation run of the utility audit.
        seed: seeds the cohort, the split, the generator and the sampling.
    """

    scenario: Scenario = Scenario.DEFAULT
    subjects: int = 12
    volume_shape: tuple[int, int, int] = (64, 64, 48)
    size: int = 32
    generator_steps: int | None = None
    generator_seconds: float | None = None
    n_synthetic: int = 48
    sample_steps: int = 20
    utility_epochs: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scenario", Scenario(self.scenario))
        if self.subjects < 5:
            raise UsageError(f"demo subjects must be >= 5 (train, holdout and test need subjects), got {self.subjects}")
        if self.generator_seconds is None:
            object.__setattr__(self, "generator_seconds", 420.0)
        if self.generator_steps is None:
            object.__setattr__(self, "generator_steps", 3000 if self.scenario is Scenario.MEMORIZING else 2000)
        for name in ("generator_steps", "generator_seconds", "n_synthetic", "sample_steps", "utility_epochs"):
            if getattr(self, name) <= 0:
                raise UsageError(f"demo {name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class DemoResult:
    """What the demo did.

    Attributes:
        decision: ``release``, ``refuse``, or ``incomplete`` (a stage is missing).
        reasons: the failing gate checks on a refusal.
        verified: the bundle passed ``verify`` with the re-audit (``None`` without a bundle).
        missing: stages whose module is not installed.
        paths: where each output is.
        timings: seconds per stage.
        facts: figures worth printing (generator steps, flagged count, utility ratios, ...).
    """

    out: Path
    scenario: Scenario
    decision: str
    reasons: tuple[str, ...]
    verified: bool | None
    missing: tuple[str, ...]
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "synthgate_version": __version__,
            "scenario": str(self.scenario),
            "decision": self.decision,
            "reasons": list(self.reasons),
            "verified": self.verified,
            "missing_stages": list(self.missing),
            "paths": {k: str(v) for k, v in self.paths.items()},
            "timings_s": {k: round(v, 1) for k, v in self.timings.items()},
            "facts": self.facts,
        }


def available_stages() -> tuple[str, ...]:
    """The demo stages whose modules import (release and verify are always there)."""
    found = []
    for stage in STAGES:
        mod = _MODULES.get(stage)
        try:
            if mod is not None:
                importlib.import_module(mod)
        except ImportError as e:
            logger.warning("demo stage %s unavailable: %s", stage, e)
            continue
        found.append(stage)
    return tuple(found)


def _out_dir(out: Path, overwrite: bool) -> None:
    if out.exists():
        if not overwrite:
            raise UsageError(f"{out} already exists; choose another --out or pass --overwrite")
        if not (out / "demo.json").is_file() and any(out.iterdir()):
            raise UsageError(f"{out} exists and is not a synthgate demo folder; refusing to overwrite it")
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)


def run_demo(
    out: str | os.PathLike[str],
    config: DemoConfig | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the whole flow on the phantom cohort into ``out``.

    Args:
        out: demo folder (each stage writes its own sub-folder atomically; ``demo.json`` sums it up).
        config: sizes and budgets.
        device: torch device for the generator and the segmentation networks.
        overwrite: replace an existing demo folder.
        log: called with one line per stage.

    Returns:
        The decision and where everything is.

    Raises:
        UsageError: ``out`` exists without ``overwrite``.
    """
    cfg = config or DemoConfig()
    say = log or (lambda msg: logger.info("%s", msg))
    root = Path(out)
    _out_dir(root, overwrite)
    have = set(available_stages())
    missing = tuple(s for s in STAGES if s not in have)
    paths: dict[str, Path] = {}
    timings: dict[str, float] = {}
    facts: dict[str, Any] = {"scenario": str(cfg.scenario)}

    def stage(name: str) -> Callable[[Callable[[], Any]], Any]:
        def run(fn: Callable[[], Any]) -> Any:
            t0 = time.perf_counter()
            say(f"[{name}] ...")
            value = fn()
            timings[name] = time.perf_counter() - t0
            say(f"[{name}] done in {timings[name]:.0f} s")
            return value

        return run

    def finish(decision: str, reasons: tuple[str, ...] = (), verified: bool | None = None) -> DemoResult:
        result = DemoResult(root, cfg.scenario, decision, reasons, verified, missing, paths, timings, facts)
        atomic_write_text(root / "demo.json", json.dumps(result.to_json(), indent=2) + "\n")
        return result

    if not {"phantom", "ingest"} <= have:
        return finish("incomplete")
    from synthgate.data.config import IngestConfig, SliceSelection
    from synthgate.data.ingest import ingest_cohort
    from synthgate.data.phantom import write_phantom_cohort
    from synthgate.data.readers import load_set

    paths["cohort"] = stage("phantom")(
        lambda: write_phantom_cohort(root / "cohort", cfg.subjects, seed=cfg.seed, shape=cfg.volume_shape)
    )
    ingest = stage("ingest")(
        lambda: ingest_cohort(
            paths["cohort"], root / "stores", IngestConfig(size=cfg.size, slices=SliceSelection.TUMOUR, seed=cfg.seed)
        )
    )
    facts["ingest"] = ingest.counts
    train, holdout, test = (load_set(ingest.stores[s]) for s in ("train", "holdout", "test"))
    paths.update({f"{s}_store": ingest.stores[s] for s in ("train", "holdout", "test")})

    if not {"generator", "sample"} <= have:
        return finish("incomplete")
    from synthgate.data.store import write_store
    from synthgate.generators import DiffusionConfig, GeneratorKind, Preset, preset, sample_generator, train_generator

    gen_preset = Preset.MEMORIZE if cfg.scenario is Scenario.MEMORIZING else Preset.TINY
    gen_cfg = preset(GeneratorKind.DIFFUSION, gen_preset)
    assert isinstance(gen_cfg.model, DiffusionConfig)  # the diffusion preset
    # the run's end-of-training sample grid uses the demo's (few) DDIM steps, not the preset's
    gen_cfg = gen_cfg.with_overrides(
        seed=cfg.seed, steps=cfg.generator_steps, model=replace(gen_cfg.model, sample_steps=cfg.sample_steps)
    )
    trained = stage("generator")(
        lambda: train_generator(gen_cfg, train, root / "generator", device=device, max_time=cfg.generator_seconds)
    )
    paths["generator"] = trained.run_dir
    facts["generator"] = {
        "kind": str(gen_cfg.kind),
        "preset": str(gen_preset),
        "steps": trained.steps,
        "planned_steps": gen_cfg.steps,
        "stopped_by": trained.stopped_by,
        "train_images": trained.n_train,
        "final_loss": round(float(trained.final_loss), 4),
    }
    synthetic = stage("sample")(
        lambda: sample_generator(
            trained.run_dir, cfg.n_synthetic, seed=cfg.seed, device=device, sample_steps=cfg.sample_steps
        )
    )
    paths["synthetic"] = write_store(synthetic, root / "synthetic")

    if "audit" not in have:
        return finish("incomplete")
    from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit
    from synthgate.audit.report import write_audit_outputs

    def audit() -> Any:
        res = run_memorization_audit(train, synthetic, holdout, MemorizationConfig(device=device))
        return res, write_audit_outputs(res, root / "audit", train, synthetic)

    audit_result, paths["audit"] = stage("audit")(audit)
    facts["audit"] = {
        "flagged": int(audit_result.flagged.sum()),
        "audited": len(synthetic),
        "threshold": round(float(audit_result.calibration.threshold), 4),
        "leaked_subjects": len(audit_result.leaked_subjects),
    }

    utility_dir: Path | None = None
    if "utility" in have:
        from synthgate.segment.report import write_utility_outputs
        from synthgate.segment.utility import UtilityConfig, run_utility

        def utility() -> Any:
            # small phantom sets: more, smaller steps and no augmentation converge within the CPU budget
            ucfg = UtilityConfig.preset(
                "quick", epochs=cfg.utility_epochs, batch_size=8, augment=False, seeds=(cfg.seed,)
            )
            res = run_utility(synthetic, train, test, ucfg, device=device)
            return res, write_utility_outputs(res, root / "utility")

        util_result, utility_dir = stage("utility")(utility)
        paths["utility"] = utility_dir
        facts["utility_ratio"] = {k: (None if v is None else round(float(v), 3)) for k, v in util_result.ratio.items()}

    from synthgate.release.bundle import build_release
    from synthgate.release.gate import ReleaseRefused
    from synthgate.release.policy import ReleasePolicy, write_policy_template
    from synthgate.release.verify import verify_bundle

    # the phantom cohort is synthgate's own, free of any licence term: the defaults otherwise
    policy = ReleasePolicy(training_licence="cc0-1.0", output_licence="cc-by-4.0")
    paths["policy"] = write_policy_template(root / "policy.toml", policy=policy)
    try:
        built = stage("release")(
            lambda: build_release(synthetic, paths["audit"], utility_dir, policy, root / "bundle", train=train)
        )
    except ReleaseRefused as e:
        facts["checks"] = [c.to_json() for c in e.decision.checks]
        reasons = tuple(c.describe() for c in e.decision.failed)
        return finish("incomplete" if "utility" not in have else "refuse", reasons)
    except GateRefused as e:
        return finish("refuse", (str(e),))
    paths["bundle"] = built.path
    paths["public_report"] = built.report_html
    facts["released"] = built.n_released
    facts["checks"] = [c.to_json() for c in built.decision.checks]
    verified = stage("verify")(lambda: verify_bundle(built.path, train=train))
    facts["verify"] = [{"name": c.name, "ok": c.passed, "detail": c.detail} for c in verified.checks]
    return finish("release", verified=verified.ok)
