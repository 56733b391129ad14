"""The release stage: policy and gate, bundle (BagIt: HF parquet + card, nnU-Net NIfTI, provenance, public
report), verify and publish (the end-to-end demo is :mod:`synthgate.demo`).

Public API (import from the modules; this package imports nothing heavy):

* :mod:`synthgate.release.policy`: ``ReleasePolicy``, ``load_policy``, ``write_policy_template``;
* :mod:`synthgate.release.gate`: ``evaluate_gate`` -> ``GateDecision``; ``ReleaseRefused`` (exit 3);
* :mod:`synthgate.release.bundle`: ``build_release`` -> ``BuildResult``;
* :mod:`synthgate.release.verify`: ``verify_bundle`` -> ``VerifyResult``;
* :mod:`synthgate.release.publish`: ``publish_bundle`` -> ``PublishResult``.
"""
