"""The one record of a check, shared by the release gate and ``release verify``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it passed, and why.

    Attributes:
        name: short machine name (``subjects_leaked``, ``bagit`` ...).
        passed: the check passed.
        detail: what the user should know or do; empty when there is nothing to add.
        value: the measured figure, for checks against a policy limit (the gate); empty otherwise.
        limit: the policy's limit the figure is held to; empty for checks without one (verify).
        waived: the policy switched the rule off (e.g. ``require_utility = false``), so it cannot refuse; the
            check counts as passed but is reported as waived, never as a pass.
    """

    name: str
    passed: bool
    detail: str = ""
    value: str = ""
    limit: str = ""
    waived: bool = False

    @property
    def status(self) -> str:
        """``pass``, ``fail`` or ``waived``."""
        return "fail" if not self.passed else "waived" if self.waived else "pass"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "passed": self.passed, "value": self.value,
                "limit": self.limit, "detail": self.detail}

    def describe(self) -> str:
        """One line: ``name: value (policy: limit); detail`` with the parts that are set."""
        text = self.name + (f": {self.value}" if self.value else "")
        text += f" (policy: {self.limit})" if self.limit else ""
        return text + (f"; {self.detail}" if self.detail else "")


__all__ = ["Check"]
