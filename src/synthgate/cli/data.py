"""``synthgate data``: ingest cohorts, make the phantom cohort, inspect and convert sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthgate import pipeline
from synthgate.atomic import check_target
from synthgate.cli.common import handle_errors, print_json, print_row, progress_bar, say
from synthgate.cli.options import (
    DtypeOpt,
    Json,
    Labels,
    LabelsOpt,
    NormaliseOpt,
    OnErrorOpt,
    Out,
    Overwrite,
    SlicesOpt,
)
from synthgate.data.config import Normalisation, OnError, SliceSelection
from synthgate.data.ingest import IngestConfig
from synthgate.data.phantom import write_phantom_cohort
from synthgate.data.readers import load_set
from synthgate.data.store import StoreDtype, write_store
from synthgate.errors import UsageError

app = typer.Typer(
    help="Ingest BraTS-style cohorts and 2D images into slice stores; make the built-in phantom cohort.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def parse_floats(text: str, n: int, option: str) -> tuple[float, ...]:
    """Parse ``"a,b,c"`` into ``n`` floats or raise a usage error naming ``option``."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} takes {n} comma-separated numbers, got {text!r}") from None
    if len(values) != n:
        raise UsageError(f"{option} takes {n} comma-separated numbers, got {text!r}")
    return values


@app.command()
@handle_errors
def ingest(
    cohort: Annotated[Path, typer.Argument(help="BraTS-style cohort folder (subject folders of NIfTI files).")],
    out_dir: Out,
    size: Annotated[int, typer.Option("--size", help="Output image size in pixels (H = W).")] = 256,
    normalisation: NormaliseOpt = Normalisation.ROBUST_MINMAX,
    min_brain: Annotated[
        float, typer.Option("--min-brain", help="Keep slices with at least this fraction of brain pixels.")
    ] = 0.15,
    slices: SlicesOpt = SliceSelection.BRAIN,
    split: Annotated[str, typer.Option("--split", help="Subject fractions for train,holdout,test.")] = "0.6,0.2,0.2",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the subject split.")] = 0,
    labels: LabelsOpt = Labels.AUTO,
    dtype: DtypeOpt = StoreDtype.FLOAT32,
    on_error: OnErrorOpt = OnError.RAISE,
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Slice a BraTS-style cohort into slice stores split by subject; --out receives train/, holdout/, test/."""

    config = IngestConfig(
        size=size, normalisation=normalisation, min_brain_fraction=min_brain, slices=slices,
        split=parse_floats(split, 3, "--split"),  # type: ignore[arg-type]
        seed=seed, labels=labels.convention(), dtype=dtype,
    )
    with progress_bar("ingest subjects") as progress:
        result = pipeline.ingest(cohort, out_dir, config, on_error=on_error, overwrite=overwrite, progress=progress)
    if as_json:
        print_json(result.to_json())
        return
    for name, c in result.counts.items():
        print_row(name, f"{c['subjects']} subjects", f"{c['images']} images", result.stores[name])
    for s in result.skipped:
        say(f"{s.path}: {s.reason}", "skipped", "yellow")
    say(
        f"channels {', '.join(result.channels)}; labels {result.label_convention}; "
        f"{result.bytes_written / 1e6:.1f} MB in {result.seconds:.1f} s"
    )


@app.command()
@handle_errors
def phantom(
    out_dir: Out,
    subjects: Annotated[int, typer.Option("--subjects", help="Number of phantom subjects.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Cohort seed: the same seed gives the same phantoms.")] = 0,
    shape: Annotated[str, typer.Option("--shape", help="Volume shape X,Y,Z in voxels.")] = "128,128,96",
    overwrite: Overwrite = False,
) -> None:
    """Write the built-in phantom cohort into --out: procedural brains with tumours in 4 sequences (BraTS-2021
    style NIfTI)."""

    dims = parse_floats(shape, 3, "--shape")
    if any(d != int(d) for d in dims):
        raise UsageError(f"--shape takes whole voxel counts, got {shape!r}")
    path = write_phantom_cohort(out_dir, subjects, seed=seed, shape=tuple(int(d) for d in dims),  # type: ignore[arg-type]
                                overwrite=overwrite)
    print_row(path)
    say(f"{subjects} phantom subjects written; ingest with: synthgate data ingest {path} --out STORES")


@app.command()
@handle_errors
def info(
    path: Annotated[Path, typer.Argument(help="A slice store, image folder or BraTS-style folder.")],
    on_error: OnErrorOpt = OnError.RAISE,
    as_json: Json = False,
) -> None:
    """Describe an image set: size, channels, subjects, label map."""

    s = load_set(path, on_error=on_error)
    _, h, w = s.shape
    summary = {
        "path": str(path),
        "images": len(s),
        "subjects": len(s.subject_ids),
        "channels": list(s.channels),
        "label_channel": s.label_channel,
        "label_convention": None if s.label_map is None else str(s.label_map.convention),
        "size": [h, w],
        "dtype": str(s.images.dtype),
        "skipped": [{"path": k.path, "reason": k.reason} for k in s.skipped],
    }
    if as_json:
        print_json(summary)
        return
    for k, v in summary.items():
        print_row(k, v)


@app.command()
@handle_errors
def convert(
    path: Annotated[Path, typer.Argument(help="Any set input: image folder, BraTS-style folder or store.")],
    out_dir: Out,
    size: Annotated[int, typer.Option("--size", help="Slice size for a BraTS-style folder.")] = 256,
    dtype: DtypeOpt = StoreDtype.FLOAT32,
    on_error: OnErrorOpt = OnError.RAISE,
    overwrite: Overwrite = False,
) -> None:
    """Write any set as one slice store at --out (no split), e.g. a folder of PNG or .npy images."""
    check_target(out_dir, overwrite)
    s = load_set(path, ingest=IngestConfig(size=size), on_error=on_error)
    write_store(s, out_dir, dtype=dtype, overwrite=overwrite)
    print_row(out_dir)
    for k in s.skipped:
        say(f"{k.path}: {k.reason}", "skipped", "yellow")
    say(f"{len(s)} images, channels {', '.join(s.channels)}")
