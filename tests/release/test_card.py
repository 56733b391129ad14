"""The dataset card: a huggingface_hub DatasetCard whose dataset_info comes from datasets' DatasetInfo, with
source datasets, citations, a preview column and the label dtype stated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthgate.release.card import REFERENCE
from synthgate.release.hf import _PALETTE, PREVIEW_ALPHA, preview_channel, preview_rgb


def test_card_loads_with_huggingface_hub(built: dict[str, Any]) -> None:
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(built["result"].path / "data" / "README.md")
    d = card.data.to_dict()
    assert d["license"] == "cc-by-nc-sa-4.0" and d["task_categories"] == ["image-segmentation"]
    assert d["source_datasets"] == ["extended"]
    info = d["dataset_info"]
    assert info["splits"] == [{"name": "train", "num_bytes": info["dataset_size"], "num_examples": 23}]
    payload = built["result"].path / "data" / "data"
    assert info["download_size"] == sum(p.stat().st_size for p in payload.glob("*.parquet"))
    names = [f["name"] for f in info["features"]]
    assert names == ["id", "seed", "image", "label", "preview"]
    assert REFERENCE in card.text and "names no citation for the training data" in card.text
    assert "int64" in card.text and "uint8" in card.text  # what with_format("numpy") returns for labels


def test_card_cites_the_training_data_from_the_policy(tmp_path: Path) -> None:
    from huggingface_hub import DatasetCard

    from synthgate.release.bundle import build_release
    from synthgate.release.policy import ReleasePolicy

    from .conftest import make_synthetic, make_train, write_audit, write_utility

    train = make_train()
    syn = make_synthetic(train)
    policy = ReleasePolicy(training_dataset="BRATS 2013", training_citation="Menze BH et al. IEEE TMI 2015",
                           dataset_name='my "quoted" set: x')
    res = build_release(syn, write_audit(tmp_path / "a", syn, train), write_utility(tmp_path / "u"), policy,
                        tmp_path / "b")
    card = DatasetCard.load(res.path / "data" / "README.md")
    assert card.data.source_datasets == ["extended|BRATS 2013"]
    assert card.data.pretty_name == 'my "quoted" set: x'
    assert "The training images come from: Menze BH et al. IEEE TMI 2015" in card.text
    import json

    ds = json.loads((res.path / "data" / "nnunet" / "Dataset001_synthgate" / "dataset.json").read_text())
    assert ds["citation"] == [REFERENCE, "Menze BH et al. IEEE TMI 2015"] and ds["name"] == 'my "quoted" set: x'


def test_preview_column_shows_the_flair_with_the_label(built: dict[str, Any], tmp_path: Path) -> None:
    import datasets

    ds = datasets.load_dataset(str(built["result"].path / "data"), split="train", cache_dir=str(tmp_path))
    row = ds[0]
    img = np.asarray(row["preview"])
    image, label = np.asarray(row["image"], np.float32), np.asarray(row["label"], np.uint8)
    assert img.shape == (*label.shape, 3) and img.dtype == np.uint8
    assert preview_channel(("t1", "t1c", "t2", "flair")) == 3
    np.testing.assert_array_equal(img, preview_rgb(image[3], label, (0, 1, 2, 4)))
    # label pixels are tinted, background stays grey
    assert (img[label == 0][:, 0] == img[label == 0][:, 1]).all()
    tumour = img[label == 2].astype(int)
    assert (tumour[:, 1] > tumour[:, 0]).all()  # label 2 (the second non-zero value) is green
    assert PREVIEW_ALPHA > 0 and _PALETTE[1][1] > _PALETTE[1][0]
