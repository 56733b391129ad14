"""synthgate's errors and the exit codes of DESIGN.md.

Library code raises a :class:`SynthgateError` subclass whose message names the file or parameter, the value
and the fix; the CLI turns it into one red line and the error's exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (DESIGN.md)."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    GATE_REFUSED = 3
    INTEGRITY = 4
    INVALID_INPUT = 5


class SynthgateError(Exception):
    """Base class: an error the user can act on. ``exit_code`` is what the CLI exits with."""

    exit_code: ExitCode = ExitCode.UNEXPECTED


class UsageError(SynthgateError):
    """A bad parameter or option value (exit 2)."""

    exit_code = ExitCode.USAGE


class InputError(SynthgateError):
    """Invalid, corrupt, empty or mismatched input data (exit 5)."""

    exit_code = ExitCode.INVALID_INPUT


class GateRefused(SynthgateError):
    """The release gate refused the release (exit 3)."""

    exit_code = ExitCode.GATE_REFUSED


class IntegrityError(SynthgateError):
    """A bundle failed verification (exit 4)."""

    exit_code = ExitCode.INTEGRITY
