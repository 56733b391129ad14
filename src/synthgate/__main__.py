"""``python -m synthgate``: the command line, also as torchrun's module.

``torchrun --nproc-per-node N -m synthgate <command> ...`` runs a command on N processes; see
:mod:`synthgate.distributed`.
"""

from __future__ import annotations

from synthgate.cli import app

if __name__ == "__main__":
    app(prog_name="synthgate")
