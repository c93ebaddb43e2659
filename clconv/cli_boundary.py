"""Where every failure of a clconv command becomes one ``clconv: error:`` line and the SPEC's
exit code (``ClconvGroup.main``), and where SIGTERM and Python warnings are turned into what
the SPEC says. Used by clconv/cli.py.
"""

from __future__ import annotations

import signal
import sys
import warnings

import click

from clconv.errors import ClconvError, warn

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_INTERNAL = 1


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so atomic writes clean up as for Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


class _PastClick(BaseException):
    """Carries an exception past click's own handling to ClconvGroup.main (see invoke)."""

    def __init__(self, original: BaseException):
        super().__init__(original)
        self.original = original


def _stopped(exc: BaseException) -> int:
    """Ctrl-C or SIGTERM: one line, and the exit code. On a terminal the line starts on a line of
    its own, after the ``^C`` the terminal echoed."""
    if isinstance(exc, Terminated):
        error_line("terminated")
        return EXIT_TERMINATED
    if sys.stderr.isatty():
        click.echo(err=True)
    error_line("interrupted")
    return EXIT_INTERRUPTED


def _signal_behind(exc: BaseException) -> BaseException | None:
    """The Ctrl-C or SIGTERM behind ``exc``, if any: a C extension whose call ran our handler
    can swallow the exception it raised and report a SystemError caused by it."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (KeyboardInterrupt, Terminated)):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _exit_code(exc: BaseException, debug: bool) -> int:
    """``exc`` said as one line on stderr (a traceback before it with --debug, for errors that
    are not the user's); the SPEC's exit code. Raises again what is not a failure (SystemExit)."""
    if isinstance(exc, click.UsageError):
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        error_line(f"{where}{exc.format_message()} (see --help)")
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        error_line(exc.format_message())
        return exc.exit_code
    if isinstance(exc, (KeyboardInterrupt, click.exceptions.Abort, Terminated)):
        return _stopped(exc)
    if not isinstance(exc, Exception):
        raise exc
    if debug:
        _print_traceback()
    if isinstance(exc, ClconvError):
        error_line(str(exc))
        return exc.exit_code
    stopped_by = _signal_behind(exc)
    if stopped_by is not None:
        return _stopped(stopped_by)
    error_line(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
    return EXIT_INTERNAL


def _print_traceback() -> None:
    import traceback  # only for --debug: 4 ms of imports otherwise

    traceback.print_exc()


def error_line(message: str) -> None:
    """``message`` as one ``clconv: error:`` line on stderr."""
    click.echo(f"clconv: error: {message}", err=True)


def warnings_as_lines() -> None:
    """SPEC: no Python warning reaches stderr as such; each becomes one clconv line."""
    warnings.showwarning = lambda message, category, *rest: warn(f"{category.__name__}: {message}")


class ClconvGroup(click.Group):
    """Runs a command and turns every failure into one line on stderr and the SPEC's exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Run the command; every failure becomes one ``clconv: error:`` line and the SPEC's exit code."""
        if args is None:
            args = sys.argv[1:]
        args = list(args)
        debug = "--debug" in args
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        warnings_as_lines()
        try:
            code = super().main(args, prog_name or "clconv", complete_var, standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
        except _PastClick as carried:
            code = _exit_code(carried.original, debug)
        except BaseException as exc:  # noqa: BLE001 - every failure is one line; SystemExit goes on
            code = _exit_code(exc, debug)
        finally:
            signal.signal(signal.SIGTERM, previous)
            if "clconv.runtime" in sys.modules:
                sys.modules["clconv.runtime"].finish_prefetch()
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx):
        """Run the command. click would print a blank line for Ctrl-C and call an EOFError
        (from any library) an abort: both go to main as they are."""
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, EOFError) as exc:
            raise _PastClick(exc) from exc
