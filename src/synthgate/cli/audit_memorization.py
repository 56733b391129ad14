"""``synthgate audit memorization``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthgate import pipeline
from synthgate.atomic import check_target
from synthgate.audit.backend import Backend, resolve_backend
from synthgate.audit.memorization import MemorizationConfig, Score
from synthgate.cli.common import handle_errors, print_json, progress_bar, resolve_device, say
from synthgate.cli.options import (
    ALL_TRANSFORMS,
    BackendOpt,
    Device,
    DeviceOpt,
    FolderChannels,
    Json,
    MaxMemory,
    Out,
    Overwrite,
    SubjectPatternOpt,
    SubjectsOpt,
    TransformsOpt,
)
from synthgate.data.readers import load_set
from synthgate.data.subjects import apply_subjects, subject_map
from synthgate.distributed import on_main, sharded
from synthgate.errors import UsageError


def parse_scores(text: str) -> tuple[Score, ...]:
    """``"pearson,structure"`` -> the scores (:class:`~synthgate.audit.memorization.Score`).

    Raises:
        UsageError: a name that is not a score.
    """
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in {str(x) for x in Score}]
    if bad or not names:
        raise UsageError(f"--scores: {', '.join(map(repr, bad)) or 'nothing'} is not one of "
                         f"{', '.join(map(str, Score))}; give a comma list of them")
    return tuple(Score(n) for n in names)


@handle_errors
@sharded
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
    pool_null: Annotated[bool, typer.Option(
        "--pool-null/--holdout-only", help="With a --holdout of fewer than 10 subjects, training subjects (each "
        "scored against the others) join the calibration's null to make up 10, so that it sees how patients "
        "differ; --holdout-only calibrates on the holdout alone.")
    ] = True,
    transforms: TransformsOpt = ALL_TRANSFORMS,
    include_label: Annotated[bool, typer.Option("--include-label", help="Compare the label channel too.")] = False,
    channels: FolderChannels = None,
    scores: Annotated[str, typer.Option(
        "--scores", help="Scores that vote, comma list of pearson, structure, partial (pearson always votes).")
    ] = "pearson,structure,partial",
    subjects: SubjectsOpt = None,
    subject_pattern: SubjectPatternOpt = None,
    max_memory: MaxMemory = 2 << 30,
    backend: BackendOpt = Backend.TORCH,
    device: DeviceOpt = Device.AUTO,
    shard_index: Annotated[bool, typer.Option(
        "--shard-index", help="Under torchrun: each rank reads and caches one part of --train (memory and search "
        "divide over the ranks) instead of spreading the synthetic images (time divides, every rank holds it all).")
    ] = False,
    overwrite: Overwrite = False,
    json_out: Json = False,
) -> None:
    """Search the synthetic images for copies of training images; calibrate; write the private evidence to --out:
    matches.csv, summary.json, report.html."""
    from synthgate.data.imageset import conform_to
    from synthgate.data.readers import parse_channels

    dev = resolve_device(device)
    be = resolve_backend(backend, dev)
    config = MemorizationConfig(k=k, quantile=quantile, threshold=threshold, transforms=transforms,
                                include_label=include_label, max_memory=max_memory, backend=be, device=dev,
                                scores=parse_scores(scores), shard_index=shard_index, pool_null=pool_null)
    on_main(lambda: check_target(out, overwrite))  # rank 0 checks where it will write
    folder_channels = parse_channels(channels)
    groups = subject_map(subjects, subject_pattern)
    train_set = apply_subjects(load_set(train, channels=folder_channels), groups, "--train")
    syn_set = conform_to(load_set(synthetic, channels=folder_channels), train_set, "--synthetic", "--train")
    hold_set = None if holdout is None else apply_subjects(
        conform_to(load_set(holdout, channels=folder_channels), train_set, "--holdout", "--train"), groups, "--holdout")
    with progress_bar("memorization audit") as progress:
        stage = pipeline.audit_memorization(train_set, syn_set, hold_set, out, config, overwrite=overwrite,
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
