"""Run the synthgate CLI in a child process, with a file-size limit or a signal at a chosen moment."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ENTRY = "import sys; from synthgate.cli import app; sys.argv[0] = 'synthgate'; app()"


def command(args: Sequence[str | Path]) -> list[str]:
    return [sys.executable, "-c", ENTRY, *(str(a) for a in args)]


def run(args: Sequence[str | Path], max_file_bytes: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``synthgate ARGS``; with ``max_file_bytes`` no file it writes may grow past that (RLIMIT_FSIZE)."""

    def limit() -> None:
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(command(args), capture_output=True, text=True, timeout=timeout, preexec_fn=limit,
                          env={**os.environ, "COLUMNS": "200"})


def interrupt(args: Sequence[str | Path], out: Path, sig: int, delay: float, timeout: float = 120) -> tuple[int, str]:
    """Start ``synthgate ARGS``, wait until it has begun writing ``out`` (a temporary beside it appears), then
    ``delay`` seconds more, and send ``sig``. Returns (exit code, stderr); the code is 0 when it finished first."""
    proc = subprocess.Popen(command(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.name.startswith(f".{out.name}.tmp-") for p in out.parent.iterdir()):
                break
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


__all__ = ["command", "interrupt", "run", "signal"]
