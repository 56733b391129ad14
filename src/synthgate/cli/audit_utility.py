"""``synthgate audit utility``: segmentation trained on synthetic slices, tested on real subjects."""

from __future__ import annotations

from pathlib import Path

import typer

from synthgate.cli.audit import app
from synthgate.cli.common import Device, err, handle_errors, out, print_json, progress_bar
from synthgate.distributed import on_main, sharded
from synthgate.errors import UsageError
from synthgate.segment.models import Net
from synthgate.segment.utility import Mode, Preset


@app.command("utility")
@handle_errors
@sharded
def utility(
    real_train: Path = typer.Option(..., "--real-train", help="Real training set (store or folder)."),
    real_test: Path = typer.Option(..., "--real-test", help="Real test set, subjects unseen in training."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder: utility.json, utility.png, fragment."),
    synthetic: Path | None = typer.Option(None, "--synthetic", help="Labelled synthetic set."),
    net: Net = typer.Option(Net.UNET, "--net", help="Segmentation network."),
    mode: Mode = typer.Option(Mode.ALL, "--mode", help="Training sources: all = real, synthetic and mixed."),
    preset: Preset = typer.Option(
        Preset.QUICK, "--preset", help="quick: 2 CPUs at 64 px; study: a GPU at 256 px (100 epochs, 3 seeds)."
    ),
    seeds: int | None = typer.Option(
        None, "--seeds", min=1, help="Runs per mode, seeds 0..N-1 (default: from --preset)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Training epochs (default: from --preset)."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Slices per step (default: from --preset)."
    ),
    lr: float | None = typer.Option(None, "--lr", help="Peak AdamW learning rate (default: from --preset)."),
    max_slices: int | None = typer.Option(None, "--max-slices", min=1, help="Train on at most N slices."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Train without augmentations."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA when available, else CPU."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch (default: torch's); 1 is fastest on a busy machine."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    as_json: bool = typer.Option(False, "--json", help="Print utility.json on stdout instead of the table."),
) -> None:
    """Train segmentation on synthetic slices and test on real subjects; compare with real training."""
    from synthgate.cli.common import resolve_device
    from synthgate.data.readers import load_set
    from synthgate.segment.report import table_rows, utility_json, write_utility_outputs
    from synthgate.segment.utility import UtilityConfig, run_utility

    if out_dir.exists() and not overwrite:  # before hours of training, not after
        raise UsageError(f"{out_dir} already exists; choose another --out or pass --overwrite")
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
    syn = None if synthetic is None else load_set(synthetic)
    train, test = load_set(real_train), load_set(real_test)
    with progress_bar("utility: training epochs") as advance:
        result = run_utility(syn, train, test, config, device=dev, progress=lambda d, t: advance(d, total=t))
    on_main(lambda: write_utility_outputs(result, out_dir, overwrite=overwrite))  # rank 0 writes
    if as_json:
        print_json(utility_json(result))
        return
    from rich.table import Table

    table = Table(title=f"Dice on {result.counts['real_test_subjects']} real test subjects (mean ± sd)")
    for col in ("training source", "WT", "TC", "ET"):
        table.add_column(col, justify="left" if col == "training source" else "right")
    for row in table_rows(result):
        table.add_row(*row)
    out.print(table)
    err.print(f"wrote {out_dir}; its private_subject_map.csv names the real subjects: keep it private")
