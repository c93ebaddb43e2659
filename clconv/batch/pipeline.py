"""The batch's loop: decode (workers) -> filter (this process) -> encode (workers) -> commit (this process).

The main process owns the one OpenCL runtime, runs the filter, and is the only
writer (atomic renames; one put_file for a remote URL, see clconv.batch.remote), so an interrupted run can stop its workers at once and
still leave no partial file. At most ``2 * jobs + 2`` images are in flight, so
memory does not grow with the number of files.

What is done to a file (:class:`Work`, and the steps of :class:`Pipeline`) is
apart from where its decode and encode run: the ``workers`` handed to
:meth:`Pipeline.run`, a :class:`clconv.batch.workers.LocalWorkers` or anything
with its methods.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clconv.atomic import commit, discard, temporary_path
from clconv.batch.progress import Progress
from clconv.batch.report import BatchResult
from clconv.batch.tasks import Task, shown
from clconv.batch.workers import DEAD_WORKER, WorkerDied
from clconv.errors import ClconvError, collected_warnings

# How often a run waiting on its workers looks for a held SIGINT/SIGTERM (see signals_deferred)
SIGNAL_POLL_SECONDS = 0.05

if TYPE_CHECKING:
    from clconv.files import FilterOptions
    from clconv.imageio.save import SaveOptions
    from clconv.runtime.device import Runtime


@dataclass
class Work:
    """What is done to every file: the filter (``options``, validated) on the device's runtime
    ``rt``, and how outputs are saved (an imageio.SaveOptions with its provenance record)."""

    rt: Runtime
    options: FilterOptions
    save_options: SaveOptions
    plans: dict = field(default_factory=dict)  # the filter's plans, shared by images of one kind

    def filtered(self, task: Task, pixels, facts: dict) -> tuple:
        """``task``'s decoded pixels filtered: (result, the result's facts, its pixel count)."""
        from clconv.files import filter_image
        from clconv.imageio import Image

        image = Image(pixels, facts["has_alpha"], facts["color"], facts["meta"], task.input)
        result = filter_image(self.rt, image, self.options, task.output, self.plans)
        facts = dict(facts, shape=result.shape, dtype=result.dtype.str)
        return result, facts, int(result.shape[0] * result.shape[1])


class Pipeline:
    """Every pending task of ``result`` through the steps, a few files at a time; the progress bar
    on ``progress_stream`` (None: none), warnings through ``warn_line`` (and recorded per file)."""

    def __init__(self, result: BatchResult, work: Work, progress_stream, warn_line, out_dir: str):
        self.result, self.work, self.warn_line, self.out_dir = result, work, warn_line, out_dir
        self.start = time.monotonic()
        self.todo = deque(t for t in result.tasks if t.status == "pending")
        self.done = len(result.tasks) - len(self.todo)  # skipped, or failed before the run
        self.decoding: dict = {}  # future -> task
        self.encoding: dict = {}  # future -> (task, pixel count, temporary output)
        self.progress = Progress(progress_stream, len(result.tasks), self.done, result.count("failed"))

    @contextlib.contextmanager
    def steps(self):
        """A run's loop goes inside. SIGINT and SIGTERM are held, and delivered by the function it
        gets, between steps (see signals_deferred); any exception (Ctrl-C, SIGTERM) aborts (see
        abort) and is raised again; the run's time is recorded and the bar closed at the end."""
        try:
            with signals_deferred() as deliver_signals:
                yield deliver_signals
        except BaseException:
            self.abort()
            raise
        finally:
            self.result.seconds = time.monotonic() - self.start
            self.progress.close()

    def run(self, workers) -> None:
        """Until every task has ended, decoding and encoding on ``workers`` (closed at the end).
        Any exception (Ctrl-C, SIGTERM) aborts, and is raised again."""
        self.workers, self.limit = workers, 2 * workers.jobs + 2
        try:
            with self.steps() as deliver_signals:
                while self.todo or self.decoding or self.encoding:
                    self.fill()
                    in_flight = list(self.decoding) + list(self.encoding)
                    for future in self.workers.wait(in_flight, timeout=SIGNAL_POLL_SECONDS):
                        if future in self.decoding:
                            self.on_decoded(future)
                        else:
                            self.on_encoded(future)
                        deliver_signals()  # after each file's step: a filter can take a while
                    self.replace_broken_pool()
                    deliver_signals()
        finally:
            self.workers.close()

    def fill(self) -> None:
        """Start decoding the next files, up to ``limit`` in flight."""
        while self.todo and len(self.decoding) + len(self.encoding) < self.limit:
            task = self.todo.popleft()
            task.started = time.monotonic()
            try:
                self.decoding[self.workers.decode(task, self.work.options.gray, self.work.options.max_pixels)] = task
            except WorkerDied:
                self.finished(task, DEAD_WORKER)

    def on_decoded(self, future) -> None:
        """A file is decoded: filter it here and hand it to a worker to encode."""
        task = self.decoding.pop(future)
        facts, error, warnings = self.workers.outcome(future)
        for message in warnings:
            self.say(message, task)
        if error:
            self.finished(task, error)
            return
        try:
            facts, count = self.filter(task, facts)
        except ClconvError as e:
            self.finished(task, e.cause)
            return
        except MemoryError:
            self.finished(task, "out of memory while filtering")
            return
        except OSError as e:
            self.finished(task, f"cannot write: {e.strerror or e}")
            return
        temporary = _temporary_for(task.output)
        try:
            self.encoding[self.workers.encode(task, facts, temporary, self.work.save_options)] = (
                task,
                count,
                temporary,
            )
        except WorkerDied:
            self.finished(task, DEAD_WORKER)

    def filter(self, task: Task, facts: dict) -> tuple[dict, int]:
        """The filter step: the result handed over to be encoded, the output's folder made;
        (the result's facts, its pixel count). What the filter says is said, and recorded."""
        filtering: list = []
        try:
            with collected_warnings() as filtering:
                pixels = self.workers.decoded_pixels(task, facts)
                result, facts, count = self.work.filtered(task, pixels, facts)
                self.workers.hand_over(task, result)
        finally:
            for message in filtering:
                self.say(message, task)
        if "://" not in task.output:  # a remote output's folder is made (where needed) by its put
            os.makedirs(os.path.dirname(task.output) or ".", exist_ok=True)
        return facts, count

    def on_encoded(self, future) -> None:
        """A file is encoded into its temporary: rename that to the output (or remove it), and record."""
        _, error, warnings = self.workers.outcome(future)
        for message in warnings:
            self.say(message, self.encoding[future][0])
        # Signals wait for the run's next step (see run), so the rename is always recorded.
        task, count, temporary = self.encoding.pop(future)
        if error is None:
            try:
                _commit(temporary, task.output)
            except ClconvError as e:
                error = e.cause
        else:
            discard(temporary)
        self.workers.release(task)
        self.finished(task, error, count)

    def replace_broken_pool(self) -> None:
        """A worker died (killed, out of memory): its files failed; go on with a fresh pool once
        nothing is in flight."""
        if self.workers.broken and not self.decoding and not self.encoding:
            self.workers.restart()

    def abort(self) -> None:
        """Stop the workers first (none may create a file after this clean-up); the files in flight
        are pending again, their temporaries removed."""
        self.workers.stop()
        self.result.interrupted = True
        for task in self.decoding.values():
            task.status = "pending"
        for task, _, temporary in self.encoding.values():
            task.status = "pending"
            discard(temporary)
        self.say(
            f"{shown(self.out_dir)}: stopped after {self.done} of {len(self.result.tasks)} files, "
            "no partial file left; run again with --skip-existing to finish"
        )

    def finished(self, task: Task, error: str | None, pixels: int | None = None) -> None:
        """Record how ``task`` ended (``error`` None: ok, with its pixel count) and move the bar on."""
        task.status, task.error = ("failed", error) if error else ("ok", None)
        task.pixels = pixels if not error else None
        task.seconds = time.monotonic() - task.started
        self.done += 1
        self.progress.advance(failed=bool(error))

    def say(self, message: str, task: Task | None = None) -> None:
        """A warning line (that never collides with the bar); recorded for ``task`` when given."""
        self.progress.say(self.warn_line, message)
        if task is not None:
            task.warnings.append(message)


def _temporary_for(output: str) -> str:
    """The file a worker encodes ``output`` into: beside it, or for a remote URL in the local
    temporary folder (clconv.batch.remote)."""
    if "://" in output:
        return temporary_path(os.path.join(tempfile.gettempdir(), os.path.basename(output)))
    return temporary_path(output)


def _commit(temporary: str, output: str) -> None:
    """The encoded ``temporary`` onto ``output``: a rename, or for a remote URL one put of the
    whole file (all or nothing on an object store), the local file removed after."""
    if "://" not in output:
        commit(temporary, output)
        return
    from clconv.batch.remote import put

    try:
        put(temporary, output)
    finally:
        discard(temporary)


@contextlib.contextmanager
def signals_deferred():
    """SIGINT and SIGTERM that arrive inside the block are held, and delivered through the handlers
    that were there (an ignored signal stays ignored) when the block calls the function it gets,
    or at its end. So the exception they raise comes from a known step of the run, never from
    inside a library call: numpy's ``fromfile`` once turned a SIGTERM that fired within its own
    isinstance check into a SystemError. Python runs signal handlers in the main thread only; in
    another thread nothing is held."""
    caught: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    held = [s for s, handler in previous.items() if handler not in (signal.SIG_IGN, None)]
    if threading.current_thread() is not threading.main_thread():
        held = []

    def restore() -> None:
        for s in held:
            signal.signal(s, previous[s])
        held.clear()

    def deliver() -> None:
        if caught:
            signum = caught[0]
            caught.clear()
            restore()
            signal.raise_signal(signum)

    for s in held:
        signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield deliver
    finally:
        restore()
        deliver()
