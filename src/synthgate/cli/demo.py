"""``synthgate demo``: the whole flow on the built-in phantom cohort."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""
    # The full demo needs the release stage; until it lands there is no demo command.
    return None
