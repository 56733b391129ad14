"""``synthgate release``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="release (not yet available in this version).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
