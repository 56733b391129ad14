"""The utility audit end to end on tiny separable sets, its errors, and its outputs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from synthgate.data.labels import BRATS2013
from synthgate.errors import InputError, UsageError
from synthgate.segment.report import fragment_html, table_rows, utility_json, write_utility_outputs
from synthgate.segment.utility import Mode, UtilityConfig, UtilityPreset, run_utility
from tests.segment.helpers import make_tumour_set, separable_config


@pytest.fixture(scope="module")
def sets() -> dict[str, object]:
    return {
        "synthetic": make_tumour_set(3, 6, 32, seed=1, prefix="gen"),
        "train": make_tumour_set(3, 6, 32, seed=2, prefix="BraTS-train-"),
        "test": make_tumour_set(2, 6, 32, seed=3, prefix="BraTS-test-", label_map=BRATS2013),
    }


@pytest.mark.slow
def test_separable_phantom_reaches_high_dice(sets) -> None:  # type: ignore[no-untyped-def]
    result = run_utility(None, sets["train"], sets["test"], separable_config(mode="real", seeds=(0,)))
    real = result.modes["real"]
    assert set(result.modes) == {"real"}
    assert real.mean["WT"] > 0.9 and real.mean["TC"] > 0.8 and real.mean["ET"] > 0.6, real.mean
    assert len(real.per_subject) == 2
    assert real.sd["WT"] is not None
    assert all(v is None for v in result.ratio.values())


@pytest.fixture(scope="module")
def all_modes(sets):  # type: ignore[no-untyped-def]
    """All three modes, two seeds, one epoch each: the bookkeeping, not the learning."""
    config = separable_config(epochs=1, seeds=(0, 1), mode="all", val_fraction=0.0)
    calls: list[tuple[int, int]] = []
    result = run_utility(
        sets["synthetic"], sets["train"], sets["test"], config, progress=lambda stage, d, n: calls.append((d, n))
    )
    assert calls == [(k, 6) for k in range(1, 7)]  # 3 modes x 2 seeds x 1 epoch
    return result


def test_all_modes_bookkeeping(all_modes) -> None:  # type: ignore[no-untyped-def]
    r = all_modes
    assert set(r.modes) == {"real", "synthetic", "mixed"}
    for m in r.modes.values():
        assert [run.seed for run in m.runs] == [0, 1]
        assert len(m.per_subject) == 4  # 2 seeds x 2 subjects
        for region in ("WT", "TC", "ET"):
            values = np.array([d.dice[region] for _, d in m.per_subject])
            assert m.mean[region] == pytest.approx(values.mean())
            assert m.sd[region] == pytest.approx(values.std(ddof=1))
    for region in ("WT", "TC", "ET"):
        assert r.ratio[region] == pytest.approx(r.modes["synthetic"].mean[region] / r.modes["real"].mean[region])
        assert r.mixed_ratio[region] == pytest.approx(r.modes["mixed"].mean[region] / r.modes["real"].mean[region])
    assert r.modes["mixed"].runs[0].n_train == 36  # synthetic + real slices
    assert {d.subject for _, d in r.modes["real"].per_subject} == {"S01", "S02"}
    assert dict(r.subject_map) == {"S01": "BraTS-test-00", "S02": "BraTS-test-01"}


def test_outputs_follow_the_contract_and_hide_real_ids(all_modes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = write_utility_outputs(all_modes, tmp_path / "u")
    doc = json.loads((out / "utility.json").read_text())
    for key in (
        "synthgate_version",
        "created",
        "net",
        "seeds",
        "epochs",
        "config",
        "versions",
        "regions",
        "modes",
        "ratio",
        "mixed_ratio",
    ):
        assert key in doc, key
    assert doc["seeds"] == [0, 1] and doc["regions"] == ["WT", "TC", "ET"] and doc["net"] == "unet"
    real = doc["modes"]["real"]
    assert set(real) >= {"mean", "sd", "per_seed", "per_subject"}
    assert {"seed", "subject", "WT", "TC", "ET"} <= set(real["per_subject"][0])
    assert doc["ratio"]["WT"] == pytest.approx(all_modes.ratio["WT"])
    fragment = (out / "utility_fragment.html").read_text()
    assert fragment.startswith("<section") and "<html" not in fragment and "<img" not in fragment
    for text in ((out / "utility.json").read_text(), fragment):
        assert "BraTS-test" not in text and "BraTS-train" not in text
    assert "BraTS-test-00" in (out / "private_subject_map.csv").read_text()
    assert (out / "utility.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UsageError, match="already exists"):
        write_utility_outputs(all_modes, out)


def test_private_subject_map_is_real_csv(all_modes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import csv
    from dataclasses import replace

    odd = {"S01": 'Smith, "J"\nscan 2', "S02": "plain"}
    out = write_utility_outputs(replace(all_modes, subject_map=odd), tmp_path / "u")
    with (out / "private_subject_map.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["opaque_id", "subject"], ["S01", 'Smith, "J"\nscan 2'], ["S02", "plain"]]


def test_table_rows_include_ratios(all_modes) -> None:  # type: ignore[no-untyped-def]
    rows = table_rows(all_modes)
    assert [r[0] for r in rows] == ["real", "synthetic", "mixed", "synthetic / real", "mixed / real"]
    assert rows[3][1] == f"{all_modes.ratio['WT']:.0%}"
    assert rows[0][1] in fragment_html(all_modes)


def test_json_ratio_is_null_without_synthetic(sets) -> None:  # type: ignore[no-untyped-def]
    r = run_utility(None, sets["train"], sets["test"], separable_config(epochs=1, mode="all", val_fraction=0.0))
    assert set(r.modes) == {"real"}
    assert utility_json(r)["ratio"] == {"WT": None, "TC": None, "ET": None}


def test_errors(sets) -> None:  # type: ignore[no-untyped-def]
    config = separable_config(epochs=1)
    with pytest.raises(UsageError, match="--synthetic"):
        run_utility(None, sets["train"], sets["test"], replace(config, mode=Mode.SYNTHETIC))
    with pytest.raises(InputError, match="both the real training and the real test"):
        run_utility(None, sets["train"], sets["train"], config)
    unlabelled = replace(sets["synthetic"], label_channel=None, label_map=None)
    with pytest.raises(InputError, match="synthetic set has no label channel"):
        run_utility(unlabelled, sets["train"], sets["test"], config)
    bad = sets["test"].images.copy()
    bad[3, 2, 0, 0] = 7.0
    with pytest.raises(InputError, match="real test set .* label values 7"):
        run_utility(None, sets["train"], replace(sets["test"], images=bad), config)
    with pytest.raises(UsageError, match="swinunetr"):
        run_utility(None, sets["train"], sets["test"], UtilityConfig.preset(UtilityPreset.QUICK, "swinunetr"))


def test_presets() -> None:
    quick, study = UtilityConfig.preset("quick"), UtilityConfig.preset("study", "swinunetr", epochs=7)
    assert quick.seeds == (0,) and quick.train.net == "unet"
    assert study.seeds == (0, 1, 2) and study.train.net == "swinunetr" and study.train.epochs == 7
    assert study.train.width % 12 == 0
    with pytest.raises(UsageError, match="unknown utility settings"):
        UtilityConfig.preset("quick", epoch=3)
    with pytest.raises(UsageError, match="distinct"):
        UtilityConfig(seeds=(1, 1))


def test_single_value_has_no_sd(sets) -> None:  # type: ignore[no-untyped-def]
    one_subject = sets["test"].select_subjects(["BraTS-test-00"])
    r = run_utility(None, sets["train"], one_subject, separable_config(epochs=1, val_fraction=0.0))
    assert r.modes["real"].sd == {"WT": None, "TC": None, "ET": None}
    assert "±" not in table_rows(r)[0][1]
    assert json.loads(json.dumps(utility_json(r)))["modes"]["real"]["sd"]["ET"] is None
