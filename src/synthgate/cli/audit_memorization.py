"""``synthgate audit memorization``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthgate import pipeline
from synthgate.audit.memorization import MemorizationConfig
from synthgate.audit.search import Backend, resolve_backend
from synthgate.cli.common import handle_errors, print_json, progress_bar, resolve_device, say
from synthgate.cli.options import (
    ALL_TRANSFORMS,
    BackendOpt,
    Device,
    DeviceOpt,
    Json,
    MaxMemory,
    Out,
    Overwrite,
    TransformsOpt,
)


@handle_errors
def memorization(
    train: Annotated[Path, typer.Option("--train", help="Training set (slice store, image folder or BraTS folder).")],
    synthetic: Annotated[Path, typer.Option("--synthetic", help="Synthetic set to audit.")],
    out: Out,
    holdout: Annotated[
        Path | None, typer.Option("--holdout", help="Real images of unseen subjects (calibration).")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Exact neighbours per synthetic image.")] = 5,
    quantile: Annotated[float, typer.Option("--quantile", help="Null quantile used as threshold.")] = 0.99,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Explicit threshold (skips calibration).")
    ] = None,
    transforms: TransformsOpt = ALL_TRANSFORMS,
    include_label: Annotated[bool, typer.Option("--include-label", help="Compare the label channel too.")] = False,
    max_memory: MaxMemory = 2 << 30,
    backend: BackendOpt = Backend.TORCH,
    device: DeviceOpt = Device.AUTO,
    overwrite: Overwrite = False,
    json_out: Json = False,
) -> None:
    """Search the synthetic images for copies of training images; calibrate; write the private evidence to --out:
    matches.csv, summary.json, report.html."""

    dev = resolve_device(device)
    be = resolve_backend(backend, dev)
    config = MemorizationConfig(k=k, quantile=quantile, threshold=threshold, transforms=transforms,
                                include_label=include_label, max_memory=max_memory, backend=be, device=dev)
    with progress_bar("memorization audit") as progress:
        stage = pipeline.audit_memorization(train, synthetic, holdout, out, config, overwrite=overwrite,
                                            progress=progress)
    result = stage.result
    if json_out:
        print_json(stage.to_json())
    else:
        cal = result.calibration
        say(
            f"{result.counts['flagged']} of {result.counts['synthetic']} synthetic images flagged "
            f"(threshold {cal.threshold:.4f}, {cal.method}); {len(result.leaked_subjects)} of "
            f"{len(result.train_subjects)} training subjects leaked; report: {out / 'report.html'} (PRIVATE)"
        )
