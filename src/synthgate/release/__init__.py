"""The release stage: policy and gate, bundle (BagIt: HF parquet + card, nnU-Net NIfTI, provenance, public
report), verify and publish (the end-to-end demo is :mod:`synthgate.demo`).

Public API (importing this package imports nothing; each name loads from its module on first use):

* :mod:`synthgate.release.policy`: ``ReleasePolicy``, ``load_policy``, ``write_policy_template``;
* :mod:`synthgate.release.gate`: ``evaluate_gate`` -> ``GateDecision`` of ``Check`` s; ``ReleaseRefused`` (exit 3);
* :mod:`synthgate.release.bundle`: ``build_release`` -> ``BuildResult``;
* :mod:`synthgate.release.verify`: ``verify_bundle`` -> ``VerifyResult``;
* :mod:`synthgate.release.publish`: ``publish_bundle`` -> ``PublishResult``.
"""

from __future__ import annotations

from typing import Any

from synthgate.runtime import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("ReleasePolicy", "load_policy", "write_policy_template"), "synthgate.release.policy"),
    **dict.fromkeys(("Check",), "synthgate.release.checks"),
    **dict.fromkeys(("GateDecision", "ReleaseRefused", "evaluate_gate"), "synthgate.release.gate"),
    **dict.fromkeys(("BuildResult", "build_release"), "synthgate.release.bundle"),
    **dict.fromkeys(("VerifyResult", "verify_bundle"), "synthgate.release.verify"),
    **dict.fromkeys(("PublishResult", "publish_bundle"), "synthgate.release.publish"),
}
_lazy = lazy_exports(__name__, _EXPORTS)


def __getattr__(name: str) -> Any:
    return _lazy(name)


__all__ = sorted(_EXPORTS)
