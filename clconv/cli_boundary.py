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


def _stopped(exc: BaseException) -> int:
    """Ctrl-C or SIGTERM: one line, and the exit code."""
    if isinstance(exc, Terminated):
        error_line("terminated")
        return EXIT_TERMINATED
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
        except ClconvError as exc:
            if debug:
                _print_traceback()
            error_line(str(exc))
            code = exc.exit_code
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            error_line(f"{where}{exc.format_message()} (see --help)")
            code = exc.exit_code
        except click.ClickException as exc:
            error_line(exc.format_message())
            code = exc.exit_code
        except (KeyboardInterrupt, click.exceptions.Abort, Terminated) as exc:
            code = _stopped(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: still one line, unless --debug
            if debug:
                _print_traceback()
            stopped_by = _signal_behind(exc)
            if stopped_by is not None:
                code = _stopped(stopped_by)
            else:
                error_line(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
                code = EXIT_INTERNAL
        finally:
            signal.signal(signal.SIGTERM, previous)
            if "clconv.runtime" in sys.modules:
                sys.modules["clconv.runtime"].finish_prefetch()
        if standalone_mode:
            sys.exit(code)
        return code
