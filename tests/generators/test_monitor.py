"""The memorization monitor: its figures against brute force, the checkpoint choice on forced curves."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from synthgate.data.imageset import ImageSet
from synthgate.errors import UsageError
from synthgate.generators.monitor import (
    HIST_BINS,
    MemorizationMonitor,
    MonitorConfig,
    MonitorPoint,
    choose_checkpoint,
    intensity_histograms,
    read_points,
    tumour_fractions,
)
from tests.sets import make_set


def _textured(n: int, seed: int) -> ImageSet:
    """``make_set`` with per-image noise texture inside the head, so distinct images are not near-copies (ids and
    subjects of their own per seed: a holdout may not share them with the training set)."""
    s = make_set(n, 3, 16, pattern="brain", seed=seed, prefix=f"s{seed}-")
    rng = np.random.default_rng(seed + 100)
    images = s.images.copy()
    head = images[:, :2] > 0
    images[:, :2] = np.where(head, np.clip(images[:, :2] + rng.normal(0, 0.15, images[:, :2].shape), 0.05, 1), 0)
    return replace(s, images=images.astype(np.float32))


def _point(step: int, fraction: float) -> MonitorPoint:
    return MonitorPoint(step, 20, round(fraction * 20), fraction, 0.9, 0.95, 0.1, 0.01)


def test_choose_checkpoint_keeps_the_last_check_before_the_curve_passes_the_limit() -> None:
    curve = [_point(100, 0.0), _point(200, 0.05), _point(300, 0.1), _point(400, 0.25), _point(500, 0.0)]
    c = choose_checkpoint(curve, 0.1)
    # 0.1 is allowed (not above), 0.25 passes; a later dip does not matter: the run stops at the first pass
    assert (c.kept_step, c.stop) == (300, True)
    assert "step 400" in c.reason and "kept step 300" in c.reason
    ongoing = choose_checkpoint(curve[:3], 0.1)
    assert (ongoing.kept_step, ongoing.stop) == (300, False)
    first = choose_checkpoint([_point(100, 0.5)], 0.1)
    assert first.kept_step is None and first.stop and "first check" in first.reason
    assert choose_checkpoint([], 0.1) == choose_checkpoint([], 0.1) and not choose_checkpoint([], 0.1).stop


def test_choose_checkpoint_at_zero_keeps_the_first_clean_check() -> None:
    c = choose_checkpoint([_point(100, 0.0), _point(200, 0.05)], 0.0)
    assert (c.kept_step, c.stop) == (100, True)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(UsageError, match="--monitor-every"):
        MonitorConfig(every=0)
    with pytest.raises(UsageError, match="--stop-on-memorization"):
        MonitorConfig(stop_on=1.5)
    assert MonitorConfig(n_samples=5, seed=3).seeds() == MonitorConfig(n_samples=5, seed=3).seeds()
    assert len(set(MonitorConfig(n_samples=5).seeds())) == 5


def test_fidelity_figures_match_brute_force() -> None:
    s = make_set(6, 3, 16, pattern="brain")
    imgs = s.images.copy()
    imgs[0, :2] = 0.0  # an image with no head
    hist = intensity_histograms(imgs, (0, 1))
    assert hist.shape == (2, HIST_BINS)
    for k in (0, 1):
        values = [imgs[i, k, y, x] for i in range(6) for y in range(16) for x in range(16)
                  if max(imgs[i, 0, y, x], imgs[i, 1, y, x]) > 0.02]
        ref, _ = np.histogram(values, bins=np.linspace(0, 1, HIST_BINS + 1))
        np.testing.assert_allclose(hist[k], ref / ref.sum())
    frac = tumour_fractions(imgs, (0, 1), 2)
    for i in range(6):
        head = sum(max(imgs[i, 0, y, x], imgs[i, 1, y, x]) > 0.02 for y in range(16) for x in range(16))
        tum = sum(imgs[i, 2, y, x] > 0 for y in range(16) for x in range(16))
        assert frac[i] == pytest.approx(tum / max(head, 1))


def test_monitor_flags_copies_and_not_fresh_images(tmp_path: Path) -> None:
    train, holdout, fresh = _textured(12, 0), _textured(10, 1), _textured(8, 2)
    mon = MemorizationMonitor(train, holdout, MonitorConfig(every=5, n_samples=8, stop_on=0.2), tmp_path)
    copies = mon.check(10, train.images[:8])
    assert copies.flagged == 8 and copies.fraction_flagged == 1.0
    assert copies.max_score == pytest.approx(1.0, abs=1e-5)
    assert copies.intensity_distance < 0.2  # a subset of the training images: close histograms
    new = mon.check(5, fresh.images)
    assert new.flagged < 8 and new.max_score < 1.0 - 1e-4
    assert new.threshold == pytest.approx(copies.threshold)  # same training set and holdout
    assert mon.due(5, 100) and mon.due(100, 100) and not mon.due(7, 100)
    mon.points.sort(key=lambda p: p.step)
    choice = mon.choice()
    assert choice is not None and choice.stop and choice.kept_step == (5 if new.fraction_flagged <= 0.2 else None)
    mon.write(choice, 10)
    saved = json.loads((tmp_path / "monitor.json").read_text())
    assert saved["kept"]["kept_step"] == choice.kept_step and len(saved["points"]) == 2
    assert (tmp_path / "monitor.png").read_bytes()[:4] == b"\x89PNG"


def test_read_points_from_the_log(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        json.dumps({"step": 1, "loss": 0.5}) + "\n" + json.dumps({"step": 2, "monitor": _point(2, 0.1).to_json()}) + "\n"
    )
    assert read_points(log) == [_point(2, 0.1)]
    assert read_points(tmp_path / "missing.jsonl") == []


def _monitored_run(tmp_path: Path, monitor: MonitorConfig, steps: int = 6):  # type: ignore[no-untyped-def]
    from synthgate.generators import train_generator
    from tests.generators.conftest import tiny_config

    train, holdout = _textured(8, 0), _textured(6, 1)
    cfg = tiny_config("diffusion", steps=steps, checkpoint_every=0)
    result = train_generator(cfg, train, tmp_path / "run", monitor=monitor, holdout=holdout)  # type: ignore[arg-type]
    return train, holdout, result


def test_monitor_numbers_on_a_tiny_run_equal_an_audit_of_the_kept_weights(tmp_path: Path) -> None:
    from synthgate.audit.memorization import MemorizationConfig, run_memorization_audit
    from synthgate.generators import sample_generator

    monitor = MonitorConfig(every=2, n_samples=6, sample_steps=3, seed=5)
    train, holdout, result = _monitored_run(tmp_path, monitor)
    assert result.stopped_by == "steps" and result.steps == 6
    run = tmp_path / "run"
    logged = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    points = [r for r in logged if "monitor" in r]
    assert [r["step"] for r in points] == [2, 4, 6]
    assert read_points(run / "log.jsonl") == [MonitorPoint.from_json(r["monitor"]) for r in points]
    saved = json.loads((run / "monitor.json").read_text())
    assert saved["kept"] is None and saved["final_step"] == 6 and len(saved["points"]) == 3  # watching only
    assert (run / "monitor.png").read_bytes()[:4] == b"\x89PNG"
    # the last point, recomputed from the final checkpoint with the monitor's seeds and the engine itself
    last = MonitorPoint.from_json(points[-1]["monitor"])
    batch = sample_generator(run, 0, seeds=monitor.seeds(), sample_steps=monitor.sample_steps)
    res = run_memorization_audit(train, batch, holdout, MemorizationConfig(transforms=monitor.transforms,  # type: ignore[arg-type]
                                                                              seed=monitor.seed, scores=("pearson",)))  # type: ignore[arg-type]
    assert last.flagged == int(res.flagged.sum()) and last.n == 6
    assert last.max_score == pytest.approx(float(np.nanmax(res.synthetic.score)), abs=1e-4)
    assert last.threshold == pytest.approx(float(res.calibration.threshold), abs=1e-6)
    hist = intensity_histograms(batch.images, train.image_channels)
    ref = intensity_histograms(train.images, train.image_channels)
    assert last.intensity_distance == pytest.approx(float(0.5 * np.abs(hist - ref).sum(axis=1).mean()), abs=1e-4)


def test_stop_on_memorization_keeps_the_checkpoint_before_a_forced_curve_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from synthgate.generators import sample_generator

    curve = iter([0.0, 0.1, 0.5, 0.0, 0.0])  # steps 2, 4, 6 (8, 10 never reached)
    real_check = MemorizationMonitor.check

    def forced(self: MemorizationMonitor, step: int, images: np.ndarray) -> MonitorPoint:
        p = replace(real_check(self, step, images), fraction_flagged=next(curve))
        self.points[-1] = p
        return p

    monkeypatch.setattr(MemorizationMonitor, "check", forced)
    monitor = MonitorConfig(every=2, n_samples=4, sample_steps=2, stop_on=0.1)
    _, _, result = _monitored_run(tmp_path, monitor, steps=10)
    run = tmp_path / "run"
    assert result.stopped_by == "memorization" and result.steps == 6
    # 0.1 is at the limit (kept), 0.5 passes it: the run keeps step 4's weights as its checkpoint
    assert int(torch.load(run / "checkpoint.pt", weights_only=True)["step"]) == 4
    assert not (run / "checkpoint-kept.pt").exists()
    kept = json.loads((run / "monitor.json").read_text())["kept"]
    assert kept["kept_step"] == 4 and kept["stop"] and "step 6" in kept["reason"]
    syn = sample_generator(run, 2, sample_steps=2)
    assert syn.meta["generator"]["step"] == 4 and syn.meta["generator"]["monitor"]["kept_step"] == 4
