"""The dataset card (``README.md``): Hugging Face YAML metadata and a body filled from the audits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthgate import __version__
from synthgate.data.geometry import LONE_SLICE_SPACING
from synthgate.release.explain import licence_sentence
from synthgate.release.gate import GateDecision
from synthgate.release.hf import SHARD_GLOB, preview_channel
from synthgate.release.nnunet import dataset_json
from synthgate.release.payload import ReleaseImages
from synthgate.release.policy import Gating, ReleasePolicy

REFERENCE = (
    "Usman Akbar M, Larsson M, Blystad I, Eklund A. Brain tumor segmentation using synthetic MR images - "
    "a comparison of GANs and diffusion models. Scientific Data 11, 259 (2024)."
)


def size_category(n: int) -> str:
    """Hugging Face ``size_categories`` value for ``n`` rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ]
    for bound, name in bounds:
        if n < bound:
            return name
    return "10M<n<100M"


def source_datasets(policy: ReleasePolicy) -> list[str]:
    """Hugging Face ``source_datasets``: the images extend the training data set the policy names."""
    return [f"extended|{policy.training_dataset}"] if policy.training_dataset.strip() else ["extended"]


def citations(policy: ReleasePolicy) -> list[str]:
    """The reference study, then the training data's source when the policy gives it."""
    return [REFERENCE, *([policy.training_citation] if policy.training_citation.strip() else [])]


def nnunet_dataset_json(r: ReleaseImages, policy: ReleasePolicy) -> dict[str, Any]:
    """The nnU-Net ``dataset.json`` of this release, with the card's name, licence and citations."""
    return dataset_json(
        r, name=policy.dataset_name, licence=policy.output_licence, citation=citations(policy),
        reference=REFERENCE,
        description=f"Synthetic 2D brain-tumour MR images released by synthgate {__version__}; "
        "the dataset card (README.md) holds the audit figures.",
    )


def card_data(r: ReleaseImages, policy: ReleasePolicy, info: Any) -> Any:
    """The card's YAML metadata as :class:`huggingface_hub.DatasetCardData`.

    Args:
        r: the released images.
        policy: licence, name, gating and source of the card.
        info: the :class:`datasets.DatasetInfo` of the written shards; ``dataset_info`` (features, splits
            with num_examples and num_bytes, sizes) is taken from it the way ``datasets`` writes it on a push.
    """
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    gated: dict[str, Any] = {}
    if policy.gated is not Gating.OFF:
        gated = {
            "extra_gated_prompt": "These synthetic images were derived from real patient MRI. By requesting access "
            "you agree not to attempt to re-identify any person and to respect the licence of the source data.",
            "extra_gated_fields": {
                "Affiliation": "text",
                "Intended use": "text",
                "I agree not to attempt re-identification": "checkbox",
            },
        }
    data = DatasetCardData(
        license=policy.output_licence,
        pretty_name=policy.dataset_name,
        task_categories=["image-segmentation"],
        tags=["medical", "mri", "brain-tumour", "brats", "synthetic", "synthgate"],
        size_categories=[size_category(len(r))],
        source_datasets=source_datasets(policy),
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": SHARD_GLOB}]}],
        **gated,
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return data


def _geometry_line(r: ReleaseImages) -> str:
    g = r.geometry
    if not g.known:
        return ("- Pixel spacing and orientation: not recorded for these images; the NIfTI files assume 1 mm pixels "
                "with rows toward posterior and columns toward the patient's right.")
    return (f"- Pixels are {g.spacing[0]:.3g} x {g.spacing[1]:.3g} mm (rows x columns) after resampling, from slices "
            f"{g.spacing[2]:.3g} mm thick; rows run toward {_AXIS_WORDS[g.axes[0]]}, columns toward "
            f"{_AXIS_WORDS[g.axes[1]]} (nibabel axis codes {''.join(g.axes)}), as in the NIfTI affines (whose "
            f"through-plane spacing is nnU-Net's 2D convention, {LONE_SLICE_SPACING:g}).")


_AXIS_WORDS = {"P": "posterior", "A": "anterior", "R": "the patient's right", "L": "the patient's left",
               "S": "superior", "I": "inferior"}


def _fmt(x: Any, nd: int = 3) -> str:
    return f"{x:.{nd}f}" if isinstance(x, int | float) and not isinstance(x, bool) else "n/a"


def render_card(
    r: ReleaseImages,
    policy: ReleasePolicy,
    decision: GateDecision,
    audit_summary: Mapping[str, Any],
    utility: Mapping[str, Any] | None,
    info: Any,
) -> str:
    """The full ``README.md`` (a :class:`huggingface_hub.DatasetCard`): YAML metadata from :func:`card_data` and a
    Markdown body. Statistics only, opaque ids."""
    from huggingface_hub import DatasetCard

    header = card_data(r, policy, info).to_yaml()
    _, c, h, w = r.images.shape if r.images.ndim == 4 else (0, 0, 0, 0)
    cal = audit_summary.get("calibration") or {}
    leaked = audit_summary.get("subjects_leaked") or {}
    counts = decision.to_json()["counts"]
    labels = ""
    if r.label_map is not None:
        labels = ", ".join(f"{k} = {v}" for k, v in sorted(r.label_map.names.items()))
    util_lines = ["No utility audit was run."]
    if utility is not None:
        ratio = utility.get("ratio") or {}
        real = ((utility.get("modes") or {}).get("real") or {}).get("mean") or {}
        syn = ((utility.get("modes") or {}).get("synthetic") or {}).get("mean") or {}
        util_lines = [
            f"A {utility.get('net', 'segmentation')} network trained on these synthetic images and tested "
            "on real held-out subjects,",
            "against the same network trained on the real training images:",
            "",
            "| region | Dice, real training | Dice, synthetic training | ratio |",
            "|---|---|---|---|",
            *(f"| {k} | {_fmt(real.get(k))} | {_fmt(syn.get(k))} | {_fmt(ratio.get(k))} |" for k in ("WT", "TC", "ET")),
        ]
    threshold, method = _fmt(audit_summary.get("threshold"), 4), cal.get("method", "unknown")
    quantile, fpr = _fmt(cal.get("quantile"), 4), _fmt(cal.get("expected_false_positive_rate"), 4)
    n_flag, n_aud, n_rm = counts["flagged_before_removal"], counts["audited"], counts["removed_flagged"]
    n_margin, n_blank = counts["removed_near_threshold"], counts["removed_zero_variance"]
    warn = "".join(f"\n- Warning: {x}" for x in decision.warnings)
    real_note = "" if not decision.real_released else (
        f"\n**WARNING: {decision.real_released} of these {len(r)} images are REAL patient images, not synthetic; "
        "they were released knowingly with `--allow-real`.**\n")
    label_row = ("| `label` | label values as stored (uint8 in the parquet files); `with_format(\"numpy\")` widens "
                 "every integer to int64, `.astype(\"uint8\")` restores the dtype |\n") if r.labels is not None else ""
    preview = r.channels[preview_channel(r.channels)] if r.channels else "first"
    training_citation = (
        f"The training images come from: {policy.training_citation}" if policy.training_citation.strip()
        else "The release policy names no citation for the training data; cite it as its licence requires."
    )
    overlay = " with the label overlaid" if r.labels is not None else ""
    body = f"""
# {policy.dataset_name}
{real_note}
Synthetic 2D brain-tumour MR images with tumour labels, made by a generative model trained on real patient
images, and released by synthgate {__version__} after its memorization and utility checks.

- {len(r)} images of {c} channel(s) ({", ".join(r.channels)}), {h} x {w} pixels, float32 intensities.
- Labels: {labels or "none"}.
{_geometry_line(r)}
- Ids are opaque (`case_0000`, ...) and carry no information about any patient.
- The same images are in `nnunet/` as an nnU-Net v2 raw data set (NIfTI), with its own `dataset.json`.

## Loading

```python
from datasets import load_dataset
ds = load_dataset("path/to/this/folder", split="train").with_format("numpy")
```

| column | what comes back |
|---|---|
| `id` | opaque id |
| `seed` | the generator seed of the image (int64) |
| `image` | float32 array, channels x rows x columns, exactly the released values |
{label_row}| `preview` | a PNG of the {preview} channel{overlay}, for looking only; compute on `image` |

## Uses

Training and benchmarking brain-tumour segmentation models, on their own or mixed with real data; teaching;
testing pipelines without access to patient data.

## Out-of-scope uses

Clinical decisions or diagnosis of any kind; estimating tumour prevalence or any property of a patient
population (the generator's sampling is not representative); any attempt to re-identify the patients whose
images trained the generator.

## Privacy considerations

Every synthetic image was compared with every training image (exact nearest-neighbour search) before release.

- Similarity threshold: {threshold}, calibrated by `{method}` (quantile {quantile}, expected
  false-positive rate {fpr}).
- Flagged as near-copies of a training image: {n_flag} of {n_aud} audited images.
- Removed before release: {n_rm} flagged, {n_margin} within the removal margin ({policy.removal_margin}),
  {n_blank} blank.
- Training subjects with at least one flagged copy: {leaked.get("count", "n/a")} of {leaked.get("total", "n/a")}.
- Released: {counts["released"]} images, none at or above the threshold.

A low similarity score does not prove that no information about a training subject is contained in an image;
it shows that no released image is a close copy of one.

## Utility

{chr(10).join(util_lines)}

## Limitations

Two-dimensional axial slices only; the generator was trained on a small cohort and its images do not cover
the variety of real tumours; intensities are normalised per volume and are not quantitative.
{licence_sentence(policy.output_licence, policy.training_licence, decision.warnings)}{warn}

## Citation

The method follows: {REFERENCE}

{training_citation}
"""
    return str(DatasetCard(f"---\n{header}\n---\n{body}"))
