"""``synthgate audit memorization``."""

from __future__ import annotations

from synthgate.cli.audit import app  # noqa: F401
