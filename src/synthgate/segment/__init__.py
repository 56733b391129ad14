"""The utility audit: does segmentation trained on synthetic slices work on real subjects?

Modules, in pipeline order (importing this package imports nothing; each name loads on first use):

* :mod:`~synthgate.segment.data`: labelled sets as WT/TC/ET targets, from each set's label map;
* :mod:`~synthgate.segment.models`: MONAI 2D ``UNet`` and ``SwinUNETR`` with one sigmoid output per region;
* :mod:`~synthgate.segment.augment`: flips, affine and intensity augmentation of a whole batch on its device;
* :mod:`~synthgate.segment.train`: ``SegmentTrainConfig``, ``train_segmenter``: Dice + BCE, AdamW, polynomial
  LR decay, augmentations, best epoch;
* :mod:`~synthgate.segment.evaluate`: Dice per subject over its restacked slices;
* :mod:`~synthgate.segment.utility`: ``UtilityConfig``, ``UtilityPreset``, ``run_utility`` (real, synthetic and
  mixed training);
* :mod:`~synthgate.segment.report`: ``write_utility_outputs`` (``utility.json``, ``utility.png``, fragment).
"""

from __future__ import annotations

from typing import Any

from synthgate.runtime import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("SegmentationData",), "synthgate.segment.data"),
    **dict.fromkeys(("Net", "build_model"), "synthgate.segment.models"),
    **dict.fromkeys(("SegmentTrainConfig", "train_segmenter"), "synthgate.segment.train"),
    **dict.fromkeys(("SubjectDice", "evaluate_subjects"), "synthgate.segment.evaluate"),
    **dict.fromkeys(
        ("Mode", "UtilityConfig", "UtilityPreset", "UtilityResult", "run_utility"), "synthgate.segment.utility"
    ),
    **dict.fromkeys(("write_utility_outputs",), "synthgate.segment.report"),
}
_lazy = lazy_exports(__name__, _EXPORTS)


def __getattr__(name: str) -> Any:
    return _lazy(name)


__all__ = sorted(_EXPORTS)
