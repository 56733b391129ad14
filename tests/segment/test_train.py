"""Training: validation split, settings, networks, augmentation, best checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from synthgate.errors import UsageError
from synthgate.segment.data import SegmentationData
from synthgate.segment.models import Net, build_model, check_size
from synthgate.segment.train import SegmentTrainConfig, split_validation, train_segmenter


def test_split_by_subject_with_enough_subjects() -> None:
    subjects = tuple(f"s{i % 6}" for i in range(60))
    tr, va, kind = split_validation(subjects, 0.2, np.random.default_rng(0))
    assert kind == "subject"
    held = {subjects[i] for i in va}
    assert len(held) == 1  # round(0.2 * 6)
    assert not held & {subjects[i] for i in tr}
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(60))


def test_split_by_slice_with_few_subjects() -> None:
    subjects = tuple(f"s{i % 3}" for i in range(40))
    tr, va, kind = split_validation(subjects, 0.25, np.random.default_rng(0))
    assert kind == "slice" and len(va) == 10 and len(tr) == 30
    assert not set(tr.tolist()) & set(va.tolist())
    assert split_validation(subjects, 0.0, np.random.default_rng(0))[2] == "none"


@pytest.mark.parametrize(
    "kwargs",
    [{"epochs": 0}, {"batch_size": 0}, {"lr": 0.0}, {"val_fraction": 1.0}, {"max_slices": 0}, {"net": "vnet"}],
)
def test_bad_settings_are_usage_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises((UsageError, ValueError)):
        SegmentTrainConfig(**kwargs)  # type: ignore[arg-type]


def test_size_checks() -> None:
    check_size(Net.SWINUNETR, 64, 64)
    with pytest.raises(UsageError, match="multiples of 32"):
        check_size(Net.SWINUNETR, 96, 80)
    with pytest.raises(UsageError, match="at least 64x64"):
        check_size(Net.SWINUNETR, 32, 32)
    with pytest.raises(UsageError, match="multiples of 16"):
        check_size(Net.UNET, 24, 24)
    with pytest.raises(UsageError, match="multiple of 12"):
        build_model(Net.SWINUNETR, 2, 3, width=16)


@pytest.mark.parametrize(("net", "width", "size"), [(Net.UNET, 4, 32), (Net.SWINUNETR, 12, 64)])
def test_networks_map_channels_to_three_region_logits(net: Net, width: int, size: int) -> None:
    import torch

    model = build_model(net, in_channels=2, out_channels=3, width=width).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 2, size, size))
    assert out.shape == (2, 3, size, size)


def test_training_is_reproducible_and_keeps_the_best_epoch(tumour_set) -> None:  # type: ignore[no-untyped-def]
    data = SegmentationData((tumour_set(n_subjects=2, slices=6, size=32),), ("real",))
    config = SegmentTrainConfig(epochs=3, batch_size=4, width=4, val_fraction=0.25)
    a = train_segmenter(data, config, seed=1)
    b = train_segmenter(data, config, seed=1)
    assert [h["loss"] for h in a.history] == pytest.approx([h["loss"] for h in b.history], rel=1e-5)
    vals = [h["val_dice"] for h in a.history]
    assert a.best_val_dice == max(vals)
    assert a.best_epoch == 1 + vals.index(max(vals))
    assert (a.n_train, a.n_val, a.val_split) == (9, 3, "slice")
    assert not a.model.training


@pytest.mark.gpu
def test_training_on_cuda_with_autocast(tumour_set) -> None:  # type: ignore[no-untyped-def]
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    data = SegmentationData((tumour_set(n_subjects=2, slices=6, size=32),), ("real",))
    result = train_segmenter(data, SegmentTrainConfig(epochs=2, batch_size=4, width=4, amp=True), device="cuda")
    assert next(result.model.parameters()).device.type == "cuda"
    assert all(np.isfinite(h["loss"]) for h in result.history)


def test_a_last_batch_of_one_slice_is_skipped(tumour_set) -> None:  # type: ignore[no-untyped-def]
    data = SegmentationData((tumour_set(n_subjects=1, slices=5, size=16),), ("real",))  # 1x1 at the bottom
    result = train_segmenter(data, SegmentTrainConfig(epochs=1, batch_size=4, width=4, val_fraction=0.0, augment=False))
    assert result.n_train == 5 and np.isfinite(result.history[0]["loss"])
