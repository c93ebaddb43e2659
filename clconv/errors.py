"""The one exception family of clconv, and its warnings.

Every error a user can cause is a ClconvError: the CLI prints it as one line,
``clconv: error: <subject>: <cause>``, and exits with ``exit_code``.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

# While not None, warn() appends here instead of printing (batch workers
# hand their warnings to the main process, which prints them).
_collected: list | None = None

# Python's warning filters and hooks are process-global: every
# ``warnings.catch_warnings`` block in clconv holds this lock, so that two threads
# (the device thread of ``clconv apply`` and the main one) never interleave them.
WARNINGS_LOCK = threading.RLock()


class ClconvError(Exception):
    """A user-facing error. ``subject`` names the file (or option) at fault."""

    exit_code = 2

    def __init__(self, subject: str | None, cause: str):
        self.subject = None if subject is None else str(subject)
        self.cause = cause
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.subject}: {self.cause}" if self.subject else self.cause

    def __reduce__(self):  # crosses process boundaries intact (batch workers)
        return (type(self), (self.subject, self.cause))


class KernelSpecError(ClconvError):
    """A -k spec that is not a known name, a well-formed matrix, or a readable kernel file."""


class OptionError(ClconvError):
    """An option value out of range or inconsistent with others."""


class ImageError(ClconvError):
    """An input image that cannot be read, is damaged, or is too large."""


class OutputError(ClconvError):
    """An output that exists already, would overwrite the input, or cannot be written."""


class DeviceError(ClconvError):
    """No OpenCL platform, an unknown --device, or a device failure."""


class BuildError(ClconvError):
    """An OpenCL program failed to build; the cause carries the build log."""


def warn(message: str) -> None:
    """One line on stderr; clconv never lets a Python warning reach the user."""
    if _collected is not None:
        _collected.append(message)
        return
    print(f"clconv: warning: {message}", file=sys.stderr, flush=True)


@contextmanager
def collected_warnings():
    """Inside the block, warnings are gathered into the yielded list instead of printed."""
    global _collected
    previous, _collected = _collected, []
    try:
        yield _collected
    finally:
        _collected = previous
