"""``synthgate audit``: memorization and utility audits."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Audit a synthetic set: memorization (copies of training images) and utility (segmentation Dice).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# Commands register themselves on ``app`` from their own modules.
from synthgate.cli import audit_memorization as _memorization  # noqa: E402,F401
from synthgate.cli import audit_utility as _utility  # noqa: E402,F401
