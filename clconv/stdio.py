"""``-`` for standard input and output in ``clconv apply``.

Decoders seek, and an output must be whole before any of it is sent (a failed encode must not
leave half an image in a pipe), so standard input is first copied to a private temporary file
and the output is written to one, then copied to standard output. Errors and warnings that name
those temporary files name ``<stdin>`` / ``<stdout>`` instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

from clconv.errors import ClconvError, ImageError, OptionError, OutputError, collected_warnings, warn

STDIO = "-"
STDIN_NAME = "<stdin>"
STDOUT_NAME = "<stdout>"


def output_extension(output: str, format: str | None) -> str | None:
    """The extension (with the dot) ``--format`` gives OUTPUT: needed for ``-``; for a file it
    must agree with the file's own extension (None: no --format)."""
    if format is None:
        if output == STDIO:
            raise OptionError("--format", "OUTPUT - (standard output) needs --format (png, jpg, tif, ...)")
        return None
    ext = "." + format.strip().lstrip(".").lower()
    if output != STDIO and os.path.splitext(output)[1].lower() != ext:
        raise OptionError("--format", f"{format} disagrees with OUTPUT {output} (its extension decides its format)")
    return ext


@contextlib.contextmanager
def standard_streams(input: str, output: str, format: str | None) -> Iterator[tuple[str, str]]:
    """(input, output) as files: ``-`` replaced by temporary files (standard input copied in
    first; the output copied to standard output once the block succeeds). Errors and warnings
    inside the block name ``<stdin>`` / ``<stdout>`` instead of the temporary files."""
    ext = output_extension(output, format)
    if input != STDIO and output != STDIO:
        yield input, output
        return
    if output == STDIO and sys.stdout.isatty():
        raise OutputError(STDOUT_NAME, "is a terminal; redirect it (> out.png) or name an OUTPUT file")
    if input == STDIO and sys.stdin.isatty():
        raise ImageError(STDIN_NAME, "is a terminal; pipe an image in (< in.png) or name an INPUT file")
    with tempfile.TemporaryDirectory(prefix="clconv-stdio-") as folder:
        names = {}
        if input == STDIO:
            input = os.path.join(folder, "stdin")
            names[input] = STDIN_NAME
            _copy_stdin(input)
        if output == STDIO:
            output = os.path.join(folder, "stdout" + (ext or ""))
            names[output] = STDOUT_NAME
        with _renamed(names):
            yield input, output
        if output in names:
            _copy_to_stdout(output)


def _copy_stdin(path: str) -> None:
    try:
        with open(path, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    except OSError as e:
        raise ImageError(STDIN_NAME, f"cannot read it: {e.strerror or e}") from e


def _copy_to_stdout(path: str) -> None:
    sys.stdout.flush()
    try:
        with open(path, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise OutputError(STDOUT_NAME, "the reading end of the pipe closed") from None
    except OSError as e:
        raise OutputError(STDOUT_NAME, f"cannot write: {e.strerror or e}") from e


@contextlib.contextmanager
def _renamed(names: dict) -> Iterator[None]:
    """Errors and warnings raised inside: temporary paths replaced by what the user named."""

    def shown(text: str) -> str:
        for path, name in names.items():
            text = text.replace(path, name)
        return text

    warnings: list = []
    try:
        with collected_warnings() as warnings:
            yield
    except ClconvError as e:
        raise type(e)(shown(e.subject) if e.subject else None, shown(e.cause)) from e
    finally:
        for message in warnings:
            warn(shown(message))
