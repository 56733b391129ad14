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

from synthgate import distributed
from synthgate.distributed import Launch
from synthgate.errors import ExitCode, SynthgateError, UsageError

logger = logging.getLogger(__name__)

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
    """``auto`` -> ``cuda`` when CUDA is available, else ``cpu``; ``cuda`` without CUDA is a usage error.

    Under a multi-process torchrun launch, ``cuda`` is this process's GPU, ``cuda:LOCAL_RANK``.
    """
    import torch

    device = Device(device)
    if device is Device.AUTO:
        device = Device.CUDA if torch.cuda.is_available() else Device.CPU
    if device is Device.CUDA and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return distributed.device_for(str(device), _launch)


def _configure_logging(launch: Launch) -> None:
    level = logging.DEBUG if debug_enabled() else logging.WARNING
    prefix = f"[rank {launch.rank}] " if launch.distributed else ""
    logging.basicConfig(level=level, format=f"{prefix}%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _print_error(text: str) -> None:
    if err.quiet:  # a rank other than 0: its own errors still show, as plain lines
        sys.stderr.write(f"[rank {_launch.rank}] {text}\n")
        return
    err.print(text, markup=True, highlight=False)


_launch = Launch()


def _enter_launch(fn: Callable[..., Any]) -> bool:
    """Read torchrun's environment; ``False`` when this rank has nothing to do in ``fn``.

    A command marked :func:`~synthgate.distributed.sharded` joins the process group on every rank, and ranks
    other than 0 keep stdout and progress quiet. Any other command runs on rank 0 alone.
    """
    global _launch
    _launch = launch = distributed.read_launch()
    _configure_logging(launch)
    if not launch.distributed:
        return True
    if not getattr(fn, distributed.SHARDED_ATTR, False):
        if launch.is_main:
            logger.warning(
                "'%s' does not spread over ranks: rank 0 runs it, the other %d rank(s) exit",
                fn.__name__,
                launch.world_size - 1,
            )
        return launch.is_main
    if not launch.is_main:
        out.quiet = err.quiet = True
    distributed.init(launch)
    return True


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: synthgate errors -> one red line + exit code; others -> exit 1.

    Under torchrun, the command runs on every rank when it is marked sharded, else on rank 0 alone.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            if not _enter_launch(fn):
                return None  # type: ignore[return-value]
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except distributed.RankFailed as e:
            if debug_enabled():
                raise
            if _launch.is_main:  # the failing rank printed its own error
                _print_error(f"[bold red]error:[/] {e}")
            raise typer.Exit(int(e.exit_code)) from None
        except SynthgateError as e:
            if debug_enabled():
                raise
            _print_error(f"[bold red]error:[/] {e}")
            raise typer.Exit(int(e.exit_code)) from None
        except KeyboardInterrupt:
            _print_error("[red]interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as e:
            if debug_enabled():
                raise
            _print_error(
                f"[bold red]unexpected error:[/] {type(e).__name__}: {e} (set SYNTHGATE_DEBUG=1 for the traceback)"
            )
            raise typer.Exit(int(ExitCode.UNEXPECTED)) from None

    return wrapper


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (no rich markup); quiet on ranks other than 0."""
    if out.quiet:
        return
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def progress_enabled() -> bool:
    """Progress bars only on a terminal, and only on rank 0."""
    return err.is_terminal and not err.quiet


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
