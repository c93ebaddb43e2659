"""Ctrl-C and SIGTERM reach the program at known points. A handler that raises in the middle of a
library call can be swallowed by it: numpy's ``fromfile`` ran our SIGTERM handler inside its own
isinstance check and reported a SystemError instead (seen in CI, and in 2 of 300 interrupted batch
runs). So batch holds the signals and delivers them between its steps, and the command line still
reads a signal behind such an error as the signal. The interrupted runs themselves are in
test_batch.py and test_cluster.py; these tests send real signals to this process."""
from __future__ import annotations

import signal
import threading

import click
import pytest

from clconv.batch.pipeline import signals_deferred
from clconv.cli_boundary import ClconvGroup, Terminated


class Delivered(Exception):
    pass


@pytest.fixture()
def sigterm_raises():
    """SIGTERM raises Delivered in this process while the test runs."""

    def handler(signum, frame):
        raise Delivered(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    yield handler
    signal.signal(signal.SIGTERM, previous)


def test_a_held_signal_is_delivered_where_the_block_asks_and_not_before(sigterm_raises):
    steps = []
    with pytest.raises(Delivered):
        with signals_deferred() as deliver:
            signal.raise_signal(signal.SIGTERM)
            steps.append("after the signal")  # still running: the signal is held
            deliver()
            steps.append("after deliver")  # pragma: no cover - deliver raised
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGTERM) is sigterm_raises


def test_a_held_signal_is_delivered_at_the_end_of_the_block_and_only_once(sigterm_raises):
    with pytest.raises(Delivered):
        with signals_deferred() as deliver:
            deliver()  # nothing held yet: nothing happens
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is sigterm_raises
    with signals_deferred():  # nothing left over from the block before
        pass


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with signals_deferred() as deliver:
            signal.raise_signal(signal.SIGTERM)
            deliver()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_nothing_is_held(sigterm_raises):
    """Python runs handlers in the main thread only, and only it may set them: a batch run from
    another thread must not fail for that."""
    seen = []

    def run():
        with signals_deferred() as deliver:
            deliver()
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [sigterm_raises]


def _group_failing_with(exc: BaseException) -> click.Group:
    @click.group(cls=ClconvGroup)
    def group():
        pass

    @group.command()
    def fail():
        raise exc

    return group


@pytest.mark.parametrize(
    "behind, code, line",
    [(Terminated(), 143, "clconv: error: terminated"), (KeyboardInterrupt(), 130, "clconv: error: interrupted")],
)
def test_an_error_that_a_signal_caused_exits_as_the_signal(capsys, behind, code, line):
    """What CPython raises when a C function returns a result with our handler's exception set."""
    swallowed = SystemError("<built-in function fspath> returned a result with an exception set")
    swallowed.__cause__ = behind
    assert _group_failing_with(swallowed).main(["fail"], standalone_mode=False) == code
    assert capsys.readouterr().err.strip().splitlines() == [line]


@pytest.mark.parametrize("raised, code", [(KeyboardInterrupt(), 130), (Terminated(), 143)])
def test_a_signal_in_a_command_is_one_line_without_a_blank_one_before_it(capsys, raised, code):
    """click prints an empty line for Ctrl-C (after the terminal's ^C); stderr here is no terminal."""
    assert _group_failing_with(raised).main(["fail"], standalone_mode=False) == code
    err = capsys.readouterr().err
    assert err.splitlines() == ["clconv: error: " + ("terminated" if code == 143 else "interrupted")]


def test_an_eoferror_from_a_library_is_an_internal_error_not_an_interruption(capsys):
    """click takes EOFError (end of input at a prompt) for an abort."""
    assert _group_failing_with(EOFError("No data left in file")).main(["fail"], standalone_mode=False) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "clconv: error: internal error: EOFError: No data left in file (run with --debug for the traceback)"
    ]


def test_an_error_without_a_signal_behind_it_is_still_an_internal_error(capsys):
    failure = SystemError("something else")
    failure.__context__ = ValueError("unrelated")
    assert _group_failing_with(failure).main(["fail"], standalone_mode=False) == 1
    assert capsys.readouterr().err.startswith("clconv: error: internal error: SystemError: something else")
