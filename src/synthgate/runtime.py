"""Cross-cutting helpers every stage needs, written once: versions of what produced a result, reading a JSON file
with a one-line error, figures rendered to PNG bytes and data URIs for the HTML reports, the progress callback
shape, optional libraries that say how to install them, and lazy package exports.

(Whether an output may be written, "already exists; choose another --out", is :func:`synthgate.atomic.check_target`,
which :func:`~synthgate.atomic.atomic_dir` applies.)

Torch-free and matplotlib-free at import: matplotlib loads on the first figure.
"""

from __future__ import annotations

import base64
import importlib
import importlib.metadata
import io
import json
import os
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from synthgate import __version__
from synthgate.errors import InputError, SynthgateError

Progress = Callable[[str, int, int], None]
"""The one progress callback shape of every long library call: ``progress(stage, done, total)``.

``stage`` names the part of the work (``"ingest"``, ``"train"``, ``"sample"``, ``"synthetic"``, ``"utility"``),
``done`` of ``total`` units of it are finished. The CLI draws it as a progress bar; the library never prints.
"""

# distributions whose name differs from the import name
_DISTRIBUTIONS = {"faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11")}


def library_version(name: str) -> str | None:
    """The installed version of the library imported as ``name`` (``None`` when it is not installed)."""
    for dist in (name, *_DISTRIBUTIONS.get(name, ())):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    module = sys.modules.get(name)
    return getattr(module, "__version__", None) if module is not None else None


def versions(*libraries: str) -> dict[str, str | None]:
    """``synthgate``, ``python`` and each of ``libraries`` (import names) with its installed version.

    Results are stamped with this so a reader can tell what produced them; nothing is imported to find it.
    """
    out: dict[str, str | None] = {"synthgate": __version__, "python": platform.python_version()}
    out.update({name: library_version(name) for name in libraries})
    return out


def read_json(path: str | Path, fix: str) -> dict[str, Any]:
    """Read a JSON object from ``path``.

    Args:
        path: the file.
        fix: what the user should do when it is missing or corrupt, e.g. ``"rerun the audit"``.

    Raises:
        InputError: missing, unreadable, not JSON, or not an object: one line naming ``path`` and ``fix``.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} is missing; {fix}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid JSON ({e}); {fix}") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a JSON object; {fix}")
    return data


# optional libraries -> the extra that installs them
_EXTRAS = {"bagit": "release", "datasets": "release", "pyarrow": "release", "huggingface_hub": "release"}


def optional_import(module: str) -> ModuleType:
    """Import a library of an optional extra, or fail with one line saying how to install it.

    Raises:
        SynthgateError: not installed (exit 1): ``pip install "synthgate[release]"``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        top = module.split(".")[0]
        if e.name is None or e.name.split(".")[0] != top:
            raise  # the library is there but something it needs is broken: show that
        extra = _EXTRAS.get(top, "all")
        raise SynthgateError(f'{top} is not installed; pip install "synthgate[{extra}]"') from None


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` that imports each public name from its module on first use.

    A package can name its whole public API in ``__all__`` while ``import synthgate.X`` stays cheap
    (``synthgate --help`` must not import torch).
    """

    def getattr_(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return getattr_


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display is needed or opened)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any, **savefig: Any) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (``savefig`` keywords pass through, e.g. ``dpi``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    pyplot().close(fig)
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>``: reports stay one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


#: glibc ``mallopt`` parameters (malloc.h) and the values :func:`keep_freed_memory` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for it
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc reuse freed memory instead of returning it to the system and page-faulting it back.

    Left to itself, glibc maps every allocation above an adaptive threshold (128 KiB at start) afresh and gives
    freed heap tops back at once. The audit's and the trainers' torch work arrays are 1-30 MiB each, allocated
    and freed thousands of times, so they were page-faulted afresh each time: 10 M minor faults and a third of
    the system time of a robust audit (101.8 s -> 87.0 s with the thresholds fixed). Arrays under 32 MiB then
    come from the heap, and up to 1 GiB of freed heap is kept for reuse; the peak resident memory is unchanged
    (memory is reused, not added). The CLI calls this at the start of each command; on other C libraries it is
    a no-op. Returns whether glibc took both settings.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


#: Spins of an idle libgomp worker before it sleeps (libgomp's own default is 300,000).
OMP_SPIN_COUNT = 3000


def short_omp_spin() -> bool:
    """Let torch's idle OpenMP workers sleep after a short spin instead of busy-waiting for the next parallel region.

    libgomp's workers spin about 300,000 times (0.1-1 ms of a core) after each parallel region. On a machine of
    few cores they take the cores from the threads that run beside torch: the feature cache's writer, the content
    hasher and OpenBLAS's GEMM workers. On 2 cores the audit's feature stage took 8.5 s with the default and 5.9 s
    with 3,000 spins (``OMP_WAIT_POLICY=passive``, no spin at all, slowed the scores' small torch calls instead).
    libgomp reads ``GOMP_SPINCOUNT`` when it loads, with torch: so this runs before torch's import (the CLI
    calls it first), and a value the user set is kept. Returns whether the setting can still take effect.
    """
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("GOMP_SPINCOUNT", str(OMP_SPIN_COUNT))
    return True


__all__ = [
    "Progress",
    "figure_png",
    "keep_freed_memory",
    "lazy_exports",
    "library_version",
    "optional_import",
    "png_data_uri",
    "pyplot",
    "read_json",
    "short_omp_spin",
    "versions",
]
