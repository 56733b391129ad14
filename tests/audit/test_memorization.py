from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from synthgate.audit.backend import Backend
from synthgate.audit.memorization import (
    MemorizationConfig,
    Transform,
    run_memorization_audit,
)
from synthgate.audit.plan import plan_memory
from synthgate.audit.planted import BASIC_KINDS, CopyKind, plant_copies
from synthgate.data.imageset import ImageSet
from synthgate.data.store import read_store, write_store
from synthgate.errors import InputError, UsageError

from .conftest import blob_images, make_set


def concat(a: ImageSet, b: ImageSet) -> ImageSet:
    return replace(a, images=np.concatenate([a.images, b.images]), ids=a.ids + b.ids,
                   subjects=a.subjects + b.subjects, sources=None)


@pytest.mark.slow
def test_every_copy_kind_is_flagged_and_unseen_images_are_not(
    train_set: ImageSet, holdout_set: ImageSet, unseen_set: ImageSet
) -> None:
    copies, rows = plant_copies(train_set, 1, seed=0)
    synthetic = concat(unseen_set, copies)
    # three scores vote at the family-wise quantile: a null of 24 is too small to hold the rate, so use 80
    holdout_set = make_set(blob_images(80, seed=2), "ho")
    res = run_memorization_audit(train_set, synthetic, holdout_set, MemorizationConfig())
    n = len(unseen_set)
    kinds = [str(k) for k in BASIC_KINDS]
    assert dict(zip(kinds, res.flagged[n:].tolist(), strict=True)) == dict.fromkeys(kinds, True)
    assert res.statistic is not None and res.statistic[n:].min() > res.statistic[:n].max()  # every copy ranks first
    assert res.flagged[:n].sum() <= 1  # 8 unseen images at a 1 % family-wise rate: one is flagged 8 % of the time
    np.testing.assert_array_equal(res.synthetic.train_row[n:], rows)  # the right source image
    t = res.synthetic.transforms
    assert t[n + kinds.index("identity")] == "identity"
    assert t[n + kinds.index("hflip")] == "hflip"
    assert "shift" in t[n + kinds.index("shift")]
    assert "rotate" in t[n + kinds.index("rotate")]
    assert res.calibration.method == "holdout-quantile" and res.calibration.n_null == len(holdout_set)
    assert set(res.calibrations) == {"pearson", "structure", "partial"}
    assert res.counts["flagged"] == len(copies) + res.flagged[:n].sum()
    assert set(res.leaked_subjects) == {train_set.subjects[r] for r in rows}
    assert res.source_row is not None and (res.source_row[:n][~res.flagged[:n]] == -1).all()
    np.testing.assert_array_equal(res.source_row[n:], rows)  # Pearson flagged each copy first: its row is named
    assert res.test.p_value is not None and res.test.p_value < 0.05


def test_pixel_only_search_misses_shifted_copies(train_set: ImageSet, holdout_set: ImageSet) -> None:
    copies, _rows = plant_copies(train_set, 2, kinds=[CopyKind.SHIFT, CopyKind.HFLIP], seed=3)
    res = run_memorization_audit(train_set, copies, holdout_set, MemorizationConfig(transforms=()))
    # pixel Pearson is exact: scores equal the brute-force top-1 of the un-mirrored training set
    assert set(res.synthetic.transforms) == {"identity"}
    robust = run_memorization_audit(train_set, copies, holdout_set, MemorizationConfig())
    assert robust.flagged.all()
    assert (robust.synthetic.score >= res.synthetic.score - 1e-6).all()
    assert not res.flagged.all()


def test_scores_are_the_exact_pixel_top1_without_transforms(train_set: ImageSet, unseen_set: ImageSet) -> None:
    from .reference import pearson_reference

    res = run_memorization_audit(train_set, unseen_set, None, MemorizationConfig(transforms=(), threshold=0.9))
    ch = train_set.image_channels
    for i in range(len(unseen_set)):
        ref = [pearson_reference(unseen_set.images[i], train_set.images[j], ch) for j in range(len(train_set))]
        assert res.synthetic.train_row[i] == int(np.argmax(ref))
        assert res.synthetic.score[i] == pytest.approx(max(ref), abs=1e-5)
        top = res.synthetic.topk_scores[i]
        np.testing.assert_allclose(top, np.sort(ref)[::-1][:5], atol=1e-5)


def test_subject_disjoint_null_without_holdout(train_set: ImageSet) -> None:
    copies, _ = plant_copies(train_set, 2, kinds=[CopyKind.IDENTITY, CopyKind.NOISE], seed=1)
    res = run_memorization_audit(train_set, copies, None, MemorizationConfig(transforms=(Transform.HFLIP,)))
    assert res.calibration.method == "train-subject-disjoint"
    assert res.calibration.n_null == len(train_set)
    assert res.null_name == "train (other subjects)"
    # the null never matched an image of its own subject
    own = [train_set.subjects[int(r)] for r in res.null.train_row]
    assert all(o != s for o, s in zip(own, train_set.subjects, strict=True))
    assert res.flagged.all()


def test_one_subject_without_holdout_needs_a_threshold(unseen_set: ImageSet) -> None:
    one = replace(unseen_set, subjects=("s",) * len(unseen_set))
    with pytest.raises(InputError, match="one subject"):
        run_memorization_audit(one, unseen_set, None, MemorizationConfig(transforms=()))
    res = run_memorization_audit(one, unseen_set, None, MemorizationConfig(transforms=(), threshold=0.99))
    assert res.calibration.method == "explicit" and res.flagged.all()


def test_zero_variance_synthetic_is_its_own_category(train_set: ImageSet, holdout_set: ImageSet) -> None:
    syn = make_set(blob_images(3, seed=9), "sy")
    images = syn.images.copy()
    images[1, 0] = 0.0  # blank image channel
    images[2, :2] = 0.0  # blank image
    syn = replace(syn, images=images)
    res = run_memorization_audit(train_set, syn, holdout_set, MemorizationConfig(transforms=()))
    assert res.synthetic.valid.tolist() == [True, False, False]
    assert res.counts["zero_variance"] == 2
    assert np.isnan(res.synthetic.score[1:]).all() and not res.flagged[1:].any()
    assert res.synthetic.transforms[1:] == ["zero-variance", "zero-variance"]


def test_zero_variance_training_images_are_never_matched(train_set: ImageSet, holdout_set: ImageSet) -> None:
    images = train_set.images.copy()
    images[3, :2] = 0.0
    tr = replace(train_set, images=images)
    syn = make_set(images[3:4].copy(), "sy")  # the blank image itself
    syn2 = make_set(train_set.images[5:6].copy(), "sz")
    res = run_memorization_audit(tr, concat(syn, syn2), holdout_set, MemorizationConfig(transforms=()))
    assert not res.synthetic.valid[0]
    assert res.counts["train_zero_variance"] == 1
    assert res.synthetic.train_row[1] == 5
    assert 3 not in res.synthetic.topk_rows[1]


@pytest.mark.parametrize("where", ["--synthetic", "--train", "--holdout"])
def test_nan_inputs_are_refused(train_set: ImageSet, holdout_set: ImageSet, unseen_set: ImageSet, where: str) -> None:
    sets = {"--train": train_set, "--synthetic": unseen_set, "--holdout": holdout_set}
    bad = sets[where].images.copy()
    bad[1, 0, 4, 4] = np.nan
    sets[where] = replace(sets[where], images=bad)
    with pytest.raises(InputError, match=f"{where}: image .*NaN"):
        run_memorization_audit(sets["--train"], sets["--synthetic"], sets["--holdout"],
                               MemorizationConfig(transforms=()))


def test_empty_and_mismatched_sets_are_refused(train_set: ImageSet, unseen_set: ImageSet) -> None:
    with pytest.raises(InputError, match="--synthetic is empty"):
        run_memorization_audit(train_set, unseen_set.subset([]), None, MemorizationConfig())
    with pytest.raises(InputError, match="--train is empty"):
        run_memorization_audit(train_set.subset([]), unseen_set, None, MemorizationConfig())
    two = make_set(blob_images(4, channels=1, seed=5), "x")
    with pytest.raises(InputError, match="channels"):
        run_memorization_audit(train_set, two, None, MemorizationConfig())
    small = make_set(blob_images(4, size=16, seed=5), "y")
    with pytest.raises(InputError, match="--holdout"):
        run_memorization_audit(train_set, unseen_set, small, MemorizationConfig())


def test_config_validation() -> None:
    with pytest.raises(UsageError, match="--k"):
        MemorizationConfig(k=0)
    with pytest.raises(UsageError, match="--quantile"):
        MemorizationConfig(quantile=1.5)
    with pytest.raises(UsageError, match="--threshold"):
        MemorizationConfig(threshold=2.0)
    with pytest.raises(UsageError, match="--max-memory"):
        MemorizationConfig(max_memory=1000)
    with pytest.raises(ValueError):
        MemorizationConfig(transforms=("warp",))  # type: ignore[arg-type]
    assert MemorizationConfig(backend="bf16").backend is Backend.BF16  # type: ignore[arg-type]


def test_backends_and_block_sizes_agree(tmp_path, train_set: ImageSet, holdout_set: ImageSet,  # type: ignore[no-untyped-def]
                                        unseen_set: ImageSet) -> None:
    store = read_store(write_store(train_set, tmp_path / "train"))
    assert isinstance(store.images, np.memmap)
    ref = run_memorization_audit(train_set, unseen_set, holdout_set, MemorizationConfig(transforms=(Transform.HFLIP,)))
    for backend in Backend:
        # 16 MB budget -> small blocks; the memory-mapped store streams through plain reads
        res = run_memorization_audit(store, unseen_set, holdout_set, MemorizationConfig(
            transforms=(Transform.HFLIP,), backend=backend, max_memory=16 << 20))
        np.testing.assert_array_equal(res.synthetic.topk_rows, ref.synthetic.topk_rows)
        np.testing.assert_array_equal(res.synthetic.topk_flip, ref.synthetic.topk_flip)
        np.testing.assert_array_equal(res.synthetic.score, ref.synthetic.score)
        for scores, want in ((res.synthetic, ref.synthetic), (res.null, ref.null)):  # window proposals included
            np.testing.assert_array_equal(scores.partial_row, want.partial_row)
            np.testing.assert_array_equal(scores.partial, want.partial)


def test_plan_respects_budget() -> None:
    small = plan_memory(64 << 20, 5, 4, 64, 64, n_warps=13, k=5, flips=True)
    d = 4 * 64 * 64
    assert small.cache_budget <= 0.45 * (64 << 20)
    assert small.query_block * 4 * d * 3 <= 0.35 * (64 << 20)
    assert small.search_block * 4 * d <= 0.3 * (64 << 20)
    filed = plan_memory(64 << 20, 5, 4, 64, 64, n_warps=13, k=5, flips=True, n_train=10_000)
    assert filed.query_block > small.query_block  # the cache's share goes to the query blocks
    assert filed.query_block * 4 * d * 3 <= 0.9 * 0.35 * (64 << 20)
    big = plan_memory(1 << 30, 5, 4, 64, 64, n_warps=13, k=5, flips=True)
    assert big.search_block > small.search_block and big.query_block > small.query_block


def test_plan_takes_the_held_descriptors_from_the_budget_first() -> None:
    free = plan_memory(64 << 20, 5, 4, 64, 64, n_warps=13, k=5, flips=True)
    held = plan_memory(64 << 20, 5, 4, 64, 64, n_warps=13, k=5, flips=True, held=(10 << 20, 6 << 20))
    assert held.cache_budget <= 0.45 * (48 << 20) < free.cache_budget  # 16 MB held on the CPU: 48 MB left
    assert held.query_block < free.query_block
    with pytest.raises(InputError, match="--max-memory 64M .* raise --max-memory"):
        plan_memory(64 << 20, 5, 4, 64, 64, n_warps=13, k=5, flips=True, held=(20 << 20, 13 << 20))


def test_include_label_changes_the_similarity(train_set: ImageSet, holdout_set: ImageSet) -> None:
    copies, rows = plant_copies(train_set, 2, kinds=[CopyKind.IDENTITY, CopyKind.NOISE], seed=4)
    without = run_memorization_audit(train_set, copies, holdout_set, MemorizationConfig(transforms=()))
    with_label = run_memorization_audit(train_set, copies, holdout_set,
                                        MemorizationConfig(transforms=(), include_label=True))
    assert with_label.settings["channels_compared"] == ["c0", "c1", "label"]
    assert without.settings["channels_compared"] == ["c0", "c1"]
    np.testing.assert_array_equal(with_label.synthetic.train_row, rows)
    assert with_label.flagged.all()
    # the noisy copies keep an exact label: including it raises their score
    assert (with_label.synthetic.score[2:] > without.synthetic.score[2:]).all()


def test_exact_copies_are_neither_proposed_for_nor_aligned(train_set: ImageSet, holdout_set: ImageSet,
                                                          unseen_set: ImageSet,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from synthgate.audit import match

    copies, rows = plant_copies(train_set, 2, kinds=[CopyKind.IDENTITY, CopyKind.ROTATE], seed=0)
    synthetic = concat(unseen_set, copies)
    proposed: list[int] = []
    real = match._proposals

    def counting(vectors, *args):  # type: ignore[no-untyped-def]
        proposed.append(len(vectors))
        return real(vectors, *args)

    monkeypatch.setattr(match, "_proposals", counting)
    res = run_memorization_audit(train_set, synthetic, holdout_set, MemorizationConfig())
    n = len(unseen_set)
    # all but the two exact copies, and the images of the 4 training subjects pooled with the 6-subject holdout
    assert sum(proposed) == len(synthetic) - 2 + len(holdout_set) + 4 * 4
    assert res.flagged[n : n + 2].all() and (res.synthetic.train_row[n : n + 2] == rows[:2]).all()
    assert (res.synthetic.score[n : n + 2] >= 1 - match.ROBUST_MIN_GAIN).all() and res.flagged[n + 2 :].all()
