"""``synthgate data``: ingest cohorts, make the phantom cohort, inspect sets."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Ingest BraTS-style cohorts and 2D images into slice stores; make the built-in phantom cohort.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
