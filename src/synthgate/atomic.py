"""Outputs appear whole or not at all: write to a temporary path beside the target, then rename.

Temporaries are named ``.NAME.tmp-PID-XXXX`` (and a replaced target ``.NAME.old-PID``), so that the next run
can tell which belong to a process that no longer exists (killed with SIGKILL, or a power cut) and remove
them. An exception, Ctrl-C or SIGTERM (see :func:`terminate_as_exception`) removes them at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from synthgate.errors import SynthgateError, UsageError

_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C so that temporaries are removed (exit 143)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def terminate_as_exception() -> None:
    """Turn SIGTERM into :class:`Terminated` in the main thread (a no-op elsewhere)."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _raise_terminated)


def disk_error(e: OSError, target: Path) -> Exception:
    """A full disk (or file-size limit) while writing ``target`` as one actionable line; other errors as they are."""
    if e.errno not in _FULL:
        return e
    return SynthgateError(
        f"{target}: {e.strerror} while writing it; nothing was written: free space or choose another --out"
    )


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale(target: Path) -> list[Path]:
    """Remove temporaries beside ``target`` left by processes that no longer run; return what was removed."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:tmp|old)-(\d+)(?:-.*)?")
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for p in target.parent.iterdir():
            m = pattern.fullmatch(p.name)
            if m and not _alive(int(m.group(1))):
                _remove(p)
                removed.append(p)
    return removed


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}.tmp-{os.getpid()}-"


def check_target(target: str | os.PathLike[str], overwrite: bool = False, option: str = "--out") -> None:
    """Check that ``target`` may be written: absent (or ``overwrite``) and its folder writable; the one home of
    "already exists". :func:`atomic_dir` applies it; a command calls it as well before long work, so the user
    hears at once.

    Writability is probed by creating (and removing) a file, since permission bits do not show a read-only
    mount or a full quota. Nothing is left behind.

    Raises:
        UsageError: ``target`` exists without ``overwrite``, or its folder cannot be written (exit 2).
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise UsageError(f"{target} already exists; choose another {option} or pass --overwrite")
    folder = target.absolute().parent
    while not folder.exists():
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=_tmp_prefix(target), dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(
            f"{option} {target}: cannot write in {folder} ({e.strerror}); choose another {option}"
        ) from None


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` when the block ends without error.

    Raises:
        UsageError: ``target`` exists and ``overwrite`` is false.
        SynthgateError: the disk filled up (nothing is left behind).
    """
    target = Path(target)
    check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), dir=target.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the result gets the usual permissions
        _replace(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise disk_error(e, target) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing target is moved aside first, restored on failure, removed after."""
    if not (target.exists() or target.is_symlink()) or not (new.is_dir() or target.is_dir()):
        os.replace(new, target)  # nothing there, or a file by a file: one atomic step
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    _remove(old)
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        old.rename(target)
        raise
    _remove(old)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise disk_error(e, path) from None
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
