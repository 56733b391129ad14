"""The ``synthgate`` command line: sub-apps data, generators, audit, release, and demo.

Parsing and rendering only; each command calls one library function. Importing this module must stay cheap
(``synthgate --help`` does not import torch): heavy imports live inside the commands.
"""

from __future__ import annotations

import typer

from synthgate import __version__
from synthgate.cli.audit import app as audit_app
from synthgate.cli.data import app as data_app
from synthgate.cli.demo import register as register_demo
from synthgate.cli.generators import app as generators_app
from synthgate.cli.release import app as release_app

app = typer.Typer(
    name="synthgate",
    help="May this set of synthetic medical images be shared? Train generators, audit memorization and "
    "utility, and gate the release.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"synthgate {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """synthgate: may this set of synthetic medical images be shared?"""


app.add_typer(data_app, name="data")
app.add_typer(generators_app, name="generators")
app.add_typer(audit_app, name="audit")
app.add_typer(release_app, name="release")
register_demo(app)

__all__ = ["app"]
