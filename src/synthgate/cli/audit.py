"""``synthgate audit``: memorization and utility audits (each command in its own module)."""

from __future__ import annotations

import typer

from synthgate.cli.audit_memorization import memorization
from synthgate.cli.audit_utility import utility

app = typer.Typer(
    help="Audit a synthetic set: memorization (copies of training images) and utility (segmentation Dice).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("memorization")(memorization)
app.command("utility")(utility)
