from __future__ import annotations

import base64
import importlib.metadata
import os
import platform

import pytest

from synthgate import __version__
from synthgate.errors import InputError
from synthgate.runtime import figure_png, library_version, png_data_uri, pyplot, read_json, versions


def test_versions_name_what_is_installed_and_none_for_what_is_not():
    v = versions("numpy", "faiss", "no_such_library_xyz")
    assert v["synthgate"] == __version__ and v["python"] == platform.python_version()
    assert v["numpy"] == importlib.metadata.version("numpy")
    assert v["faiss"] is not None  # installed as faiss-cpu: found under its distribution name
    assert v["no_such_library_xyz"] is None and library_version("no_such_library_xyz") is None


def test_read_json_says_what_to_do_in_one_line(tmp_path):
    p = tmp_path / "summary.json"
    with pytest.raises(InputError, match=r"summary.json is missing; rerun the audit$"):
        read_json(p, "rerun the audit")
    p.write_text("{not json")
    with pytest.raises(InputError, match=r"summary.json: not valid JSON \(.*\); rerun the audit$"):
        read_json(p, "rerun the audit")
    p.write_text("[1, 2]")
    with pytest.raises(InputError, match="expected a JSON object"):
        read_json(p, "rerun the audit")
    p.write_text('{"k": 1}')
    assert read_json(p, "rerun the audit") == {"k": 1}


def test_figure_becomes_a_png_and_a_data_uri():
    plt = pyplot()
    assert plt.get_backend().lower() == "agg"
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    png = figure_png(fig, dpi=20)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and not plt.get_fignums()  # closed
    uri = png_data_uri(png)
    assert uri.startswith("data:image/png;base64,") and base64.b64decode(uri.split(",", 1)[1]) == png


def test_keep_freed_memory_sets_both_glibc_thresholds() -> None:
    import platform

    from synthgate.runtime import keep_freed_memory

    glibc = platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc  # glibc accepts both values (mallopt returns 1); elsewhere a no-op


def test_short_omp_spin_is_set_before_torch_loads_and_keeps_the_users_value() -> None:
    import subprocess
    import sys

    probe = ("import os, sys; from synthgate.runtime import short_omp_spin; took = short_omp_spin(); "
             "import torch; print(took, os.environ.get('GOMP_SPINCOUNT'), short_omp_spin())")
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "3000", "False"]  # after torch's import it can no longer take effect
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "GOMP_SPINCOUNT": "77"}, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["True", "77", "False"]
