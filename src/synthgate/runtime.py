"""Cross-cutting helpers every stage needs, written once: versions of what produced a result, reading a JSON file
with a one-line error, and figures rendered to PNG bytes and data URIs for the HTML reports.

(Whether an output may be written, "already exists; choose another --out", is :func:`synthgate.atomic.check_target`,
which :func:`~synthgate.atomic.atomic_dir` applies.)

Torch-free and matplotlib-free at import: matplotlib loads on the first figure.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from synthgate import __version__
from synthgate.errors import InputError

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


__all__ = ["figure_png", "library_version", "png_data_uri", "pyplot", "read_json", "versions"]
