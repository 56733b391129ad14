"""The memorization audit: does any synthetic image reproduce a training image, and how sure are we?

For every synthetic image the exact nearest training images (channel-averaged Pearson r, mirrors and small
shifts, rotations and zooms included), a threshold calibrated on unseen real images, flags, and the training
subjects that leaked; the private evidence report. Entry points: ``run_memorization_audit`` with a
``MemorizationConfig`` -> ``MemorizationResult``; ``write_audit_outputs`` writes ``matches.csv``,
``summary.json`` and ``report.html``.

Importing this package imports nothing; each name loads from its module on first use.
"""

from __future__ import annotations

from typing import Any

from synthgate.runtime import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        ("MemorizationConfig", "MemorizationResult", "run_memorization_audit"),
        "synthgate.audit.memorization",
    ),
    **dict.fromkeys(("summary_json", "write_audit_outputs"), "synthgate.audit.report"),
    **dict.fromkeys(("Calibration", "CalibrationMethod"), "synthgate.audit.calibration"),
    **dict.fromkeys(("Backend",), "synthgate.audit.backend"),
    **dict.fromkeys(("Transform",), "synthgate.audit.transforms"),
}
_lazy = lazy_exports(__name__, _EXPORTS)


def __getattr__(name: str) -> Any:
    return _lazy(name)


__all__ = sorted(_EXPORTS)
