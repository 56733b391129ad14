"""``synthgate audit memorization``."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from synthgate.cli.audit import app
from synthgate.cli.common import Device, err, handle_errors, print_json, progress_bar, resolve_device
from synthgate.errors import UsageError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"512M"``, ``"2G"``, ``"1.5G"`` or a byte count -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise UsageError(f"--max-memory: cannot read {text!r}; give bytes or a size like 512M or 2G")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


@app.command("memorization")
@handle_errors
def memorization(
    train: Path = typer.Option(..., "--train", help="Training set (slice store, image folder or BraTS folder)."),
    synthetic: Path = typer.Option(..., "--synthetic", help="Synthetic set to audit."),
    out: Path = typer.Option(..., "--out", help="Output folder: matches.csv, summary.json, report.html."),
    holdout: Path | None = typer.Option(None, "--holdout", help="Real images of unseen subjects (calibration)."),
    k: int = typer.Option(5, "--k", help="Exact neighbours per synthetic image."),
    quantile: float = typer.Option(0.99, "--quantile", help="Null quantile used as threshold."),
    threshold: float | None = typer.Option(None, "--threshold", help="Explicit threshold (skips calibration)."),
    transforms: str = typer.Option("hflip,shift,rotate,zoom", "--transforms",
                                   help="Geometric transforms searched (comma list; 'none' for pixel Pearson)."),
    include_label: bool = typer.Option(False, "--include-label", help="Compare the label channel too."),
    channels: str | None = typer.Option(
        None, "--channels", help="Names of the channels of image-folder inputs, in order (e.g. t1,t1c,t2,flair,label); "
        "without it a folder's channels take --train's names by position."),
    max_memory: str = typer.Option("2G", "--max-memory", help="Memory budget, e.g. 512M, 2G."),
    backend: str = typer.Option("faiss", "--backend", help="Candidate search: faiss | torch | bf16."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto | cpu | cuda."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    json_out: bool = typer.Option(False, "--json", help="Print summary.json on stdout."),
) -> None:
    """Search the synthetic images for copies of training images; calibrate; write the private evidence."""
    from synthgate.audit.memorization import MemorizationConfig, Transform, run_memorization_audit
    from synthgate.audit.report import summary_json, write_audit_outputs
    from synthgate.audit.search import Backend
    from synthgate.data.imageset import conform_to
    from synthgate.data.readers import load_set, parse_channels

    names = [t.strip() for t in transforms.split(",") if t.strip() and t.strip() != "none"]
    try:
        ts = tuple(Transform(t) for t in names)
        be = Backend(backend)
    except ValueError as e:
        raise UsageError(f"{e}; --transforms takes {[t.value for t in Transform]}, "
                         f"--backend takes {[b.value for b in Backend]}") from None
    dev = resolve_device(device)
    if be is Backend.FAISS and dev != "cpu":
        be = Backend.TORCH
    config = MemorizationConfig(k=k, quantile=quantile, threshold=threshold, transforms=ts,
                                include_label=include_label, max_memory=parse_size(max_memory), backend=be,
                                device=dev)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; choose another --out or pass --overwrite")
    folder_channels = parse_channels(channels)
    train_set = load_set(train, channels=folder_channels)
    syn_set = conform_to(load_set(synthetic, channels=folder_channels), train_set, "--synthetic", "--train")
    hold_set = None if holdout is None else conform_to(load_set(holdout, channels=folder_channels), train_set,
                                                        "--holdout", "--train")
    with progress_bar("memorization audit") as advance:
        result = run_memorization_audit(train_set, syn_set, hold_set, config,
                                        progress=lambda stage, d, t: advance(d, t, rate=stage))
    write_audit_outputs(result, out, train_set, syn_set, overwrite=overwrite)
    if json_out:
        print_json(summary_json(result))
    else:
        cal = result.calibration
        err.print(
            f"{result.counts['flagged']} of {result.counts['synthetic']} synthetic images flagged "
            f"(threshold {cal.threshold:.4f}, {cal.method}); {len(result.leaked_subjects)} of "
            f"{len(result.train_subjects)} training subjects leaked; report: {out / 'report.html'} (PRIVATE)",
            highlight=False,
        )
