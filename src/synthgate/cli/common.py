"""What every CLI command shares: error handling and exit codes, consoles, devices, progress.

Data goes to stdout, messages to stderr. A :class:`~synthgate.errors.SynthgateError` becomes one red line and
its exit code; any other exception exits 1 with one line, and the traceback only with ``SYNTHGATE_DEBUG=1``.
Local variables are never printed (they can hold patient data). Text that comes from the user or the data (paths,
ids, messages that quote them) is never read as rich markup: :func:`say` and :func:`warn` print it verbatim.
Tab-separated data rows go to stdout through :func:`print_row`, with real tabs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from synthgate import distributed
from synthgate.atomic import Terminated, terminate_as_exception
from synthgate.cli.options import Device
from synthgate.distributed import Launch
from synthgate.errors import ExitCode, SynthgateError, UsageError
from synthgate.runtime import Progress, keep_freed_memory, short_omp_spin

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_WIDE = 10_000  # off a terminal, tables and lines keep their full width instead of wrapping at 80 columns


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=True, width=None if stream.isatty() else _WIDE)


out = _console(stderr=False)  # data
err = _console(stderr=True)  # messages


def say(text: str, prefix: str = "", style: str = "", *, to: Console | None = None) -> None:
    """Print ``text`` verbatim (never as markup) after an optional styled ``prefix``; on stderr by default."""
    line = Text.assemble((prefix, style), " " if prefix and text else "", text)
    (to or err).print(line, highlight=False)


def warn(text: str) -> None:
    """A yellow ``warning:`` line on stderr; ``text`` printed verbatim."""
    say(text, "warning:", "yellow")


def print_row(*fields: object) -> None:
    """One tab-separated data row on stdout, with real tab characters (for ``cut`` and spreadsheets)."""
    if out.quiet:
        return
    sys.stdout.write("\t".join(str(f) for f in fields) + "\n")
    sys.stdout.flush()


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


def _say_error(text: str, prefix: str, style: str) -> None:
    if err.quiet:  # a rank other than 0: its own errors still show, as plain lines
        sys.stderr.write(f"[rank {_launch.rank}] {prefix} {text}\n")
        return
    say(text, prefix, style)


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


def _interruption(e: BaseException) -> BaseException | None:
    """The Ctrl-C or SIGTERM behind ``e``, if ``e`` wraps one: Python 3.11 turns an exception raised while a class
    is created (a signal during an import, e.g. matplotlib's) into ``RuntimeError("Error calling __set_name__
    ...")`` caused by it, which must still exit as an interruption."""
    seen: set[int] = set()
    cause: BaseException | None = e.__cause__ or e.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (KeyboardInterrupt, Terminated)):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: synthgate errors -> one red line + exit code; others -> exit 1.

    Under torchrun, the command runs on every rank when it is marked sharded, else on rank 0 alone.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        terminate_as_exception()  # SIGTERM unwinds like Ctrl-C: temporaries are removed
        keep_freed_memory()  # torch's CPU work arrays are reused, not page-faulted afresh (runtime.py)
        short_omp_spin()  # idle OpenMP workers leave the cores to the other threads (runtime.py)
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
                _say_error(str(e), "error:", "bold red")
            raise typer.Exit(int(e.exit_code)) from None
        except SynthgateError as e:
            if debug_enabled():
                raise
            _say_error(str(e), "error:", "bold red")
            raise typer.Exit(int(e.exit_code)) from None
        except KeyboardInterrupt:
            _say_error("", "interrupted", "red")
            raise typer.Exit(130) from None
        except Terminated:
            _say_error("", "terminated", "red")
            raise typer.Exit(143) from None
        except Exception as e:
            stop = _interruption(e)
            if stop is not None:  # Ctrl-C or SIGTERM arrived where Python wraps it (e.g. during a class's creation)
                _say_error("", "interrupted" if isinstance(stop, KeyboardInterrupt) else "terminated", "red")
                raise typer.Exit(130 if isinstance(stop, KeyboardInterrupt) else 143) from None
            if debug_enabled():
                raise
            text = f"{type(e).__name__}: {e} (set SYNTHGATE_DEBUG=1 for the traceback)"
            _say_error(text, "unexpected error:", "bold red")
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
def progress_bar(description: str) -> Iterator[Progress]:
    """Yield a library ``progress(stage, done, total)`` callback drawn as one rich bar per stage (``description:
    stage``), with its rate and ETA, on a terminal; a no-op elsewhere."""
    if not progress_enabled():
        yield lambda stage, done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import (
        Progress as RichProgress,
    )

    with RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as prog:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(f"{description}: {stage}", total=total, rate="")
            task = tasks[stage]
            prog.update(task, completed=done, total=total)
            speed = prog.tasks[task].speed
            prog.update(task, rate=f"{speed:,.0f}/s" if speed else "")

        yield update
