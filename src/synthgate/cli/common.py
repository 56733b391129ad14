"""What every CLI command shares: error handling and exit codes, consoles, devices, progress.

Data goes to stdout, messages to stderr. A :class:`~synthgate.errors.SynthgateError` becomes one red line and
its exit code; any other exception exits 1 with one line, and the traceback only with ``SYNTHGATE_DEBUG=1``.
Local variables are never printed (they can hold patient data).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from synthgate.atomic import Terminated, terminate_as_exception
from synthgate.errors import ExitCode, SynthgateError, UsageError

P = ParamSpec("P")
R = TypeVar("R")

out = Console(soft_wrap=True)  # data
err = Console(stderr=True, soft_wrap=True)  # messages


class Device(StrEnum):
    """``--device`` choices."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


def debug_enabled() -> bool:
    return os.environ.get("SYNTHGATE_DEBUG", "") not in ("", "0", "false", "False")


def resolve_device(device: Device | str) -> str:
    """``auto`` -> ``cuda`` when CUDA is available, else ``cpu``; ``cuda`` without CUDA is a usage error."""
    import torch

    device = Device(device)
    if device is Device.AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device is Device.CUDA and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return str(device)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: synthgate errors -> one red line + exit code; others -> exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        logging.basicConfig(
            level=logging.DEBUG if debug_enabled() else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        terminate_as_exception()  # SIGTERM unwinds like Ctrl-C: temporaries are removed
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except SynthgateError as e:
            if debug_enabled():
                raise
            err.print(f"[bold red]error:[/] {e}", markup=True, highlight=False)
            raise typer.Exit(int(e.exit_code)) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]")
            raise typer.Exit(130) from None
        except Terminated:
            err.print("[red]terminated[/]")
            raise typer.Exit(143) from None
        except Exception as e:
            if debug_enabled():
                raise
            err.print(
                f"[bold red]unexpected error:[/] {type(e).__name__}: {e} "
                "(set SYNTHGATE_DEBUG=1 for the traceback)",
                markup=True,
                highlight=False,
            )
            raise typer.Exit(int(ExitCode.UNEXPECTED)) from None

    return wrapper


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (no rich markup)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def progress_enabled() -> bool:
    """Progress bars only on a terminal."""
    return err.is_terminal


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """Yield ``advance(done, total=None)``: a rich progress bar on terminals, a no-op elsewhere."""
    if not progress_enabled():
        yield lambda *a, **k: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as prog:
        task = prog.add_task(description, total=total, rate="")

        def update(done: int, total: int | None = None, rate: str = "") -> None:
            prog.update(task, completed=done, total=total, rate=rate)

        yield update
