"""``synthgate audit utility``: segmentation trained on synthetic slices, tested on real subjects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthgate import pipeline
from synthgate.cli.common import handle_errors, out, print_json, progress_bar, resolve_device, say
from synthgate.cli.options import (
    Device,
    DeviceOpt,
    FolderChannels,
    Json,
    Out,
    Overwrite,
    SubjectPatternOpt,
    SubjectsOpt,
)
from synthgate.data.imageset import conform_to
from synthgate.data.readers import load_set, parse_channels
from synthgate.data.subjects import apply_subjects, subject_map
from synthgate.distributed import sharded
from synthgate.segment.models import Net
from synthgate.segment.report import table_rows
from synthgate.segment.utility import Mode, UtilityConfig, UtilityPreset


@handle_errors
@sharded
def utility(
    real_train: Annotated[Path, typer.Option("--real-train", help="Real training set (store or folder).")],
    real_test: Annotated[Path, typer.Option("--real-test", help="Real test set, subjects unseen in training.")],
    out_dir: Out,
    synthetic: Annotated[Path | None, typer.Option("--synthetic", help="Labelled synthetic set.")] = None,
    channels: FolderChannels = None,
    net: Annotated[Net, typer.Option("--net", help="Segmentation network.")] = Net.UNET,
    mode: Annotated[
        Mode, typer.Option("--mode", help="Training sources: all = real, synthetic and mixed.")
    ] = Mode.ALL,
    preset: Annotated[
        UtilityPreset,
        typer.Option("--preset", help="quick: 2 CPUs at 64 px; study: a GPU at 256 px (100 epochs, 3 seeds)."),
    ] = UtilityPreset.QUICK,
    seeds: Annotated[
        int | None, typer.Option("--seeds", min=1, help="Runs per mode, seeds 0..N-1 (default: from --preset).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Training epochs (default: from --preset).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Slices per step (default: from --preset).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Peak AdamW learning rate (default: from --preset).")
    ] = None,
    max_slices: Annotated[
        int | None, typer.Option("--max-slices", min=1, help="Train on at most N slices.")
    ] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Train without augmentations.")] = False,
    subjects: SubjectsOpt = None,
    subject_pattern: SubjectPatternOpt = None,
    device: DeviceOpt = Device.AUTO,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", min=1, help="CPU threads for torch (default: torch's); 1 is fastest on a busy machine."
        ),
    ] = None,
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Train segmentation on synthetic slices and test on real subjects; compare with real training. Writes
    utility.json, utility.png and the report fragment to --out."""

    config = UtilityConfig.preset(
        preset,
        net,
        seeds=None if seeds is None else tuple(range(seeds)),
        mode=mode,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_slices=max_slices,
        augment=False if no_augment else None,
    )
    dev = resolve_device(device)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    groups = subject_map(subjects, subject_pattern)
    train = apply_subjects(load_set(real_train), groups, "--real-train")
    test = apply_subjects(load_set(real_test), groups, "--real-test")
    syn = None if synthetic is None else conform_to(load_set(synthetic, channels=parse_channels(channels)), train,
                                                    "--synthetic", "--real-train")
    with progress_bar("utility: training epochs") as progress:
        stage = pipeline.audit_utility(syn, train, test, out_dir, config, device=dev, overwrite=overwrite,
                                       progress=progress)
    result = stage.result
    if as_json:
        print_json(stage.to_json())
        return
    from rich.table import Table

    table = Table(title=f"Dice on {result.counts['real_test_subjects']} real test subjects (mean ± sd)")
    for col in ("training source", "WT", "TC", "ET"):
        table.add_column(col, justify="left" if col == "training source" else "right")
    for row in table_rows(result):
        table.add_row(*row)
    out.print(table)
    say(f"wrote {out_dir}; its private_subject_map.csv names the real subjects: keep it private")
