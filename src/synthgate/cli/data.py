"""``synthgate data``: ingest cohorts, make the phantom cohort, inspect and convert sets."""

from __future__ import annotations

from pathlib import Path

import typer

from synthgate.cli.common import err, handle_errors, out, print_json, progress_bar
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
    cohort: Path = typer.Argument(..., help="BraTS-style cohort folder (subject folders of NIfTI files)."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder for the train / holdout / test stores."),
    size: int = typer.Option(256, help="Output image size in pixels (H = W)."),
    normalisation: str = typer.Option(
        "robust-minmax", "--normalise", help="robust-minmax | robust-max | zscore | none (per volume)."
    ),
    min_brain: float = typer.Option(0.15, help="Keep slices with at least this fraction of brain pixels."),
    slices: str = typer.Option("brain", help="brain: slices with enough brain; tumour: only those with tumour."),
    split: str = typer.Option("0.6,0.2,0.2", help="Subject fractions for train,holdout,test."),
    seed: int = typer.Option(0, help="Seed of the subject split."),
    labels: str = typer.Option("auto", help="Label convention: auto | brats2021 | brats2023 | brats2013."),
    dtype: str = typer.Option("float32", help="Store dtype: float32 | float16."),
    on_error: str = typer.Option("raise", help="raise: stop at an invalid subject; skip: skip and list it."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Slice a BraTS-style cohort into slice stores split by subject."""
    from synthgate.data.ingest import IngestConfig, Normalisation, SliceSelection, ingest_cohort

    try:
        config = IngestConfig(
            size=size, normalisation=Normalisation(normalisation), min_brain_fraction=min_brain,
            slices=SliceSelection(slices), split=parse_floats(split, 3, "--split"),  # type: ignore[arg-type]
            seed=seed, labels=None if labels == "auto" else labels, dtype=dtype,
        )
    except ValueError as e:
        raise UsageError(f"invalid option value: {e}") from None
    with progress_bar("ingest subjects") as advance:
        result = ingest_cohort(cohort, out_dir, config, on_error=on_error, overwrite=overwrite,
                               progress=lambda d, t: advance(d, t))
    if as_json:
        print_json(result.to_json())
        return
    for name, c in result.counts.items():
        out.print(f"{name}\t{c['subjects']} subjects\t{c['images']} images\t{result.stores[name]}")
    for s in result.skipped:
        err.print(f"[yellow]skipped[/] {s.path}: {s.reason}")
    err.print(
        f"channels {', '.join(result.channels)}; labels {result.label_convention}; "
        f"{result.bytes_written / 1e6:.1f} MB in {result.seconds:.1f} s"
    )


@app.command()
@handle_errors
def phantom(
    out_dir: Path = typer.Option(..., "--out", help="Output cohort folder (BraTS-2021 style NIfTI)."),
    subjects: int = typer.Option(10, help="Number of phantom subjects."),
    seed: int = typer.Option(0, help="Cohort seed: the same seed gives the same phantoms."),
    shape: str = typer.Option("128,128,96", help="Volume shape X,Y,Z in voxels."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out folder."),
) -> None:
    """Write the built-in phantom cohort: procedural brains with tumours in 4 sequences."""
    from synthgate.data.phantom import write_phantom_cohort

    dims = parse_floats(shape, 3, "--shape")
    if any(d != int(d) for d in dims):
        raise UsageError(f"--shape takes whole voxel counts, got {shape!r}")
    path = write_phantom_cohort(out_dir, subjects, seed=seed, shape=tuple(int(d) for d in dims),  # type: ignore[arg-type]
                                overwrite=overwrite)
    out.print(str(path))
    err.print(f"{subjects} phantom subjects written; ingest with: synthgate data ingest {path} --out STORES")


@app.command()
@handle_errors
def info(
    path: Path = typer.Argument(..., help="A slice store, image folder or BraTS-style folder."),
    on_error: str = typer.Option("raise", help="raise | skip invalid files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Describe an image set: size, channels, subjects, label map."""
    from synthgate.data.readers import load_set

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
        out.print(f"{k}\t{v}")


@app.command()
@handle_errors
def convert(
    path: Path = typer.Argument(..., help="Any set input: image folder, BraTS-style folder or store."),
    out_dir: Path = typer.Option(..., "--out", help="Output slice store."),
    size: int = typer.Option(256, help="Slice size for a BraTS-style folder."),
    dtype: str = typer.Option("float32", help="Store dtype: float32 | float16."),
    on_error: str = typer.Option("raise", help="raise | skip invalid files."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out folder."),
) -> None:
    """Write any set as one slice store (no split), e.g. a folder of PNG or .npy images."""
    from synthgate.atomic import check_output
    from synthgate.data.ingest import IngestConfig
    from synthgate.data.readers import load_set
    from synthgate.data.store import write_store

    check_output(out_dir, overwrite)
    s = load_set(path, ingest=IngestConfig(size=size), on_error=on_error)
    write_store(s, out_dir, dtype=dtype, overwrite=overwrite)
    out.print(str(out_dir))
    for k in s.skipped:
        err.print(f"[yellow]skipped[/] {k.path}: {k.reason}")
    err.print(f"{len(s)} images, channels {', '.join(s.channels)}")
