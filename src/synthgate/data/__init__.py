"""Data: image sets in memory (:class:`ImageSet`) and on disk (the slice store), read from any input.

* ``imageset``: ``ImageSet`` (N x C x H x W, ids, subjects, channels, label channel and map), ``Skipped``;
* ``readers``: ``load_set``, the one entry point for a store, a folder of 2D files or a BraTS-style folder;
* ``subjects``: subjects of image-folder inputs from ``--subjects`` / ``--subject-pattern`` (``subject_map``,
  ``apply_subjects``, ``SubjectMap``, ``SubjectSource``);
* ``store``: the slice store (``write_store``, ``read_store``, streamed ``StoreWriter``, ``StoreDtype``);
* ``ingest`` / ``config`` / ``slicing`` / ``brats``: a BraTS-style cohort -> train / holdout / test stores
  split by subject (``ingest_cohort``, ``IngestConfig``, ``OnError``, ``Normalisation``, ``SliceSelection``);
* ``labels``: label conventions, ``LabelMap``, the BraTS regions (``REGIONS``);
* ``phantom``: the built-in phantom cohort (``write_phantom_cohort``) for tests and the demo.

Importing this package imports nothing; each name loads from its module on first use.
"""

from __future__ import annotations

from typing import Any

from synthgate.runtime import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("ImageSet", "Skipped", "check_compatible", "require_nonempty"), "synthgate.data.imageset"),
    **dict.fromkeys(("load_set",), "synthgate.data.readers"),
    **dict.fromkeys(("SubjectMap", "SubjectSource", "apply_subjects", "subject_map"), "synthgate.data.subjects"),
    **dict.fromkeys(("StoreDtype", "StoreWriter", "is_store", "read_store", "write_store"), "synthgate.data.store"),
    **dict.fromkeys(("IngestConfig", "Normalisation", "OnError", "SliceSelection"), "synthgate.data.config"),
    **dict.fromkeys(("IngestResult", "ingest_cohort", "slice_cohort"), "synthgate.data.ingest"),
    **dict.fromkeys(("REGIONS", "LabelConvention", "LabelMap", "Region", "label_map_for"), "synthgate.data.labels"),
    **dict.fromkeys(("write_phantom_cohort",), "synthgate.data.phantom"),
}
_lazy = lazy_exports(__name__, _EXPORTS)


def __getattr__(name: str) -> Any:
    return _lazy(name)


__all__ = sorted(_EXPORTS)
