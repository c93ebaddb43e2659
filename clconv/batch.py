"""``clconv batch``: a folder tree through the filter, pipelined.

Three stages overlap. Worker processes (``--jobs``) decode inputs and encode
results; the main process owns the one OpenCL runtime, runs the filter, and
is the only writer (atomic renames), so an interrupted run can kill its
workers at once and still leave no partial file. At most ``2 * jobs + 2``
images are in flight, so memory does not grow with the number of files.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from clconv.atomic import TEMP_PREFIX, commit, discard, temporary_path
from clconv.errors import ClconvError, ImageError, OptionError, OutputError, collected_warnings, warn


def shown(path: str) -> str:
    """A path as text that always prints and encodes as UTF-8: undecodable bytes become \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------- #
# What to do: the tasks
# --------------------------------------------------------------------------- #


@dataclass
class Task:
    """One input file and its output; ``status``/``error`` are filled in as the run goes."""

    rel_input: str
    rel_output: str
    input: str
    output: str
    status: str = "pending"  # then "ok", "failed" or "skipped"
    made_with: str | None = None  # a skipped output's filter settings, where they differ
    error: str | None = None
    error_path: str | None = None  # the file the error is about, when it is not the input
    warnings: list = field(default_factory=list)  # what was said about this file (also on stderr)
    pixels: int | None = None
    seconds: float = 0.0
    started: float = field(default=0.0, repr=False)

    def record(self) -> dict:
        error = f"{shown(self.error_path)}: {self.error}" if self.error and self.error_path else self.error
        return {"input": shown(self.rel_input), "output": shown(self.rel_output), "status": self.status,
                "error": error, "warnings": list(self.warnings), "pixels": self.pixels,
                "seconds": round(self.seconds, 4)}


def readable_extensions() -> frozenset[str]:
    """The extensions of every format Pillow can read here, and .npy."""
    from PIL import Image

    Image.init()
    return frozenset({ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
                     | {".npy"})


def _same_file(a: os.stat_result, b: os.stat_result | None) -> bool:
    return b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def find_inputs(in_dir: str, out_dir: str, recursive: bool, patterns: tuple[str, ...],
                passed_over: list | None = None) -> list[str]:
    """Relative paths of the input files under ``in_dir``, sorted.

    Files match ``patterns`` (case-insensitive globs on the name) or, with none,
    an extension Pillow reads. Symbolic links to files are followed; symbolic
    links to folders are not descended into, and no folder is visited twice, so
    links cannot loop. ``out_dir`` (when it lies inside ``in_dir``) is left out:
    the run never reads what it writes. Without ``recursive``, the subfolders not entered are
    appended to ``passed_over`` (when given).
    """
    extensions = None if patterns else readable_extensions()
    lowered = [p.lower() for p in patterns]
    try:
        out_stat = os.stat(out_dir)
    except OSError:
        out_stat = None
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        folder = os.path.join(in_dir, rel_dir) if rel_dir else in_dir
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen or (rel_dir and _same_file(st, out_stat)):
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as entries:
                entries = sorted(entries, key=lambda e: e.name)
        except OSError as e:
            if not rel_dir:
                raise ImageError(in_dir, f"cannot read the folder: {e.strerror or e}") from e
            warn(f"{shown(folder)}: folder skipped: {e.strerror or e}")
            continue
        for entry in entries:
            rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        pending.append(rel)
                    elif passed_over is not None and not _same_file(entry.stat(), out_stat):
                        passed_over.append(rel)
                    continue
                if entry.is_symlink() and entry.is_dir():
                    continue  # a link to a folder: not descended into
                if entry.is_symlink() and not os.path.exists(entry.path):
                    pass  # a dangling link that matches is listed, and fails like any unreadable file
                elif not entry.is_file():
                    continue  # FIFOs, sockets, devices: never opened
            except OSError:
                continue
            name = entry.name
            if name.startswith(TEMP_PREFIX):
                continue
            if extensions is not None:
                if os.path.splitext(name)[1].lower() not in extensions:
                    continue
            elif not any(fnmatch.fnmatchcase(name.lower(), p) for p in lowered):
                continue
            found.append(rel)
    return sorted(found)


def output_name(rel_input: str, format: str | None) -> str:
    if not format:
        return rel_input
    return os.path.splitext(rel_input)[0] + "." + format


def normalized_format(format: str | None) -> str | None:
    """``--format``: an extension clconv can write (``png``, ``.jpg``, ...), without the dot."""
    if format is None:
        return None
    from clconv.imageio import output_format

    ext = format.strip().lstrip(".").lower()
    if not ext or os.sep in ext:
        raise OptionError("--format", f"{format!r} is not a file extension")
    try:
        output_format("x." + ext)
    except ClconvError as e:
        raise OptionError("--format", e.cause) from None
    return ext


def plan_tasks(in_dir: str, out_dir: str, rel_inputs: list[str], format: str | None) -> list[Task]:
    tasks, owners = [], {}
    for rel in rel_inputs:
        rel_out = output_name(rel, format)
        task = Task(rel, rel_out, os.path.join(in_dir, rel), os.path.join(out_dir, rel_out))
        key = os.path.normcase(rel_out)
        if key in owners:
            task.status, task.error = "failed", f"same output {shown(rel_out)} as {shown(owners[key])}"
        else:
            owners[key] = rel
        tasks.append(task)
    return tasks


# --------------------------------------------------------------------------- #
# The worker processes: decode and encode
# --------------------------------------------------------------------------- #
# Pixels travel through raw files in a private scratch folder, not through the
# pool's pipes: only small messages are queued, so no pipe ever fills (a full
# one would hang the exit after an interrupt), and no process pickles
# megabytes. A worker writes an output only as the temporary file the main
# process named, so the main process can remove it if the worker is stopped.


def _worker_init() -> None:
    # The main process handles Ctrl-C for everyone; a worker just stops when told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _decode(path: str, scratch: str, gray: bool, max_pixels: int):
    """Decode ``path`` into the raw file ``scratch``: (facts, error, warnings)."""
    from clconv import imageio
    with collected_warnings() as warnings:
        try:
            image = imageio.load(path, gray=gray, max_pixels=max_pixels)
            image.pixels.tofile(scratch)
        except ClconvError as e:
            return None, e.cause, warnings
        except MemoryError:
            return None, "out of memory while decoding", warnings
        except OSError as e:
            return None, f"cannot pass the pixels on: {e.strerror or e}", warnings
        facts = {"shape": image.pixels.shape, "dtype": image.pixels.dtype.str, "has_alpha": image.has_alpha,
                 "color": image.color, "meta": image.meta}
        return facts, None, warnings


def _encode(scratch: str, facts: dict, output: str, temporary: str, save_options=None):
    """Encode the raw pixels in ``scratch`` for ``output`` into the file ``temporary`` (``save_options``:
    an imageio.SaveOptions)."""
    import numpy as np

    from clconv import imageio
    from clconv.atomic import write_temporary
    with collected_warnings() as warnings:
        try:
            pixels = np.fromfile(scratch, dtype=facts["dtype"]).reshape(facts["shape"])
            write = imageio.writer(output, pixels, has_alpha=facts["has_alpha"], color=facts["color"],
                                   meta=facts["meta"], options=save_options)
            write_temporary(temporary, output, write)
        except ClconvError as e:
            return None, e.cause, warnings
        except MemoryError:
            return None, "out of memory while encoding", warnings
        return None, None, warnings


def _pool(jobs: int) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    # Never fork a process that holds an OpenCL context (PoCL's threads do not survive it).
    method = "forkserver" if "forkserver" in methods else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["clconv.imageio"])
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop at once: a worker holds nothing that must be saved."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 2.0
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(1.0)


# --------------------------------------------------------------------------- #
# Progress on a terminal
# --------------------------------------------------------------------------- #


class Progress:
    """A one-line bar redrawn at most ten times a second; silent when ``stream`` is None."""

    def __init__(self, stream, total: int):
        self.stream, self.total, self.start = stream, total, time.monotonic()
        self.last_draw, self.drawn = 0.0, False

    def update(self, done: int, failed: int, processed: int, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        elapsed = max(now - self.start, 1e-9)
        rate = processed / elapsed
        eta = (self.total - done) / rate if rate > 0 else None
        width = 24
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        eta_text = f"ETA {int(eta) // 60}:{int(eta) % 60:02d}" if eta is not None else "ETA --:--"
        line = f"[{bar}] {done}/{self.total} files  {rate:.1f} images/s  {eta_text}"
        if failed:
            line += f"  {failed} failed"
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        """Wipe the bar so that a message can take the line (it is redrawn on the next update)."""
        if self.stream is not None and self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False
            self.last_draw = 0.0

    def finish(self) -> None:
        if self.stream is not None and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #


@dataclass
class BatchResult:
    tasks: list[Task]
    settings: dict
    seconds: float
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(t.status == status for t in self.tasks)

    @property
    def failures(self) -> list[Task]:
        return [t for t in self.tasks if t.status == "failed"]

    def summary(self) -> dict:
        return {"ok": self.count("ok"), "failed": self.count("failed"), "skipped": self.count("skipped"),
                "seconds": round(self.seconds, 3)}

    def report(self) -> dict:
        from clconv import __version__

        summary = self.summary()
        if self.interrupted:
            summary["interrupted"] = True
            summary["pending"] = self.count("pending")
        return {"clconv": __version__, "settings": self.settings,
                "files": [t.record() for t in self.tasks if t.status != "pending"], "summary": summary}


def settings_of(options, runtime_name: str, extra: dict) -> dict:
    """The run's settings, enough to reproduce a result: kernels with their weights included."""
    kernels = []
    for kernel in options.kernels:
        entry = {"spec": kernel.spec}
        parts = kernel.parts
        if len(parts) == 1:
            entry["weights"] = parts[0].weights.tolist()
        else:
            entry["magnitude_of"] = [{"spec": p.spec, "weights": p.weights.tolist()} for p in parts]
        kernels.append(entry)
    settings = {"kernels": kernels, "border": options.border, "border_value": options.border_value,
                "flip": options.flip, "gray": options.gray, "alpha": options.alpha, "abs": options.abs,
                "scale": options.scale, "bias": options.bias, "padding": options.padding,
                "stride": options.stride, "dilation": options.dilation, "dtype": options.dtype,
                "algorithm": options.algorithm, "device": runtime_name, "max_pixels": options.max_pixels}
    settings.update(extra)
    return settings


def write_report(path: str, result: BatchResult) -> None:
    from clconv.atomic import write_atomically

    text = json.dumps(result.report(), indent=2, ensure_ascii=True) + "\n"
    write_atomically(path, lambda fo: fo.write(text.encode("ascii")))


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def run(in_dir: str, out_dir: str, options, *, recursive: bool = False, patterns=(), format: str | None = None,
        skip_existing: bool = False, force: bool = False, jobs: int | None = None, report: str | None = None,
        progress_stream=None, on_warning=None, save_options=None, hints: bool = True) -> BatchResult:
    """Filter every matching file under ``in_dir`` into the same relative path under ``out_dir``.

    Bad usage (options, kernels, folders, device) raises before any file is
    touched. A file that fails is recorded and the run goes on. Ctrl-C or
    SIGTERM (KeyboardInterrupt or clconv.cli.Terminated) stops the workers,
    writes the report so far, and is raised again.
    """
    from clconv.files import check_paths, filter_image, with_provenance

    in_dir, out_dir = os.fspath(in_dir), os.fspath(out_dir)
    options = options.validate()
    format = normalized_format(format)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise OptionError("--jobs", f"must be at least 1, got {jobs}")
    if not os.path.isdir(in_dir):
        raise ImageError(in_dir, "is not a folder" if os.path.exists(in_dir) else "no such folder")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputError(out_dir, "is not a folder")
    if os.path.exists(out_dir) and os.path.samefile(in_dir, out_dir):
        raise OutputError(out_dir, "is IN_DIR; write the results to another folder")
    if _inside(in_dir, out_dir):
        raise OutputError(out_dir, "contains IN_DIR; write the results to a folder outside it")
    if skip_existing and force:
        raise OptionError("--skip-existing", "cannot be combined with --force")
    if report and not os.path.isdir(os.path.dirname(os.path.abspath(report))):
        raise OutputError(report, "its folder does not exist")
    if report and os.path.isdir(report):
        raise OutputError(report, "is a folder")
    warn_line = on_warning or warn
    save_options = with_provenance(save_options, options)

    passed_over: list[str] = []
    tasks = plan_tasks(in_dir, out_dir, find_inputs(in_dir, out_dir, recursive, tuple(patterns), passed_over),
                       format)
    if not tasks:
        what = f"matching {' or '.join(patterns)}" if patterns else "image"
        raise ImageError(in_dir, f"no {what} file{'' if recursive else ' (add --recursive for subfolders)'}")
    for task in tasks:
        if task.status != "pending":
            continue
        if skip_existing and os.path.lexists(task.output):
            task.status = "skipped"
            other = _made_otherwise(task.output, options)
            if other is not None:
                task.warnings.append(f"{shown(task.output)}: exists, made with other settings ({other}); skipped")
                task.made_with = other
            continue
        try:
            check_paths(task.input, task.output, force, need_folder=False)
        except ClconvError as e:  # about the output (it exists, it is the input ...): name it
            task.status, task.error, task.error_path = "failed", e.cause, task.output

    from clconv.runtime import get_runtime

    rt = get_runtime(options.device)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise OutputError(out_dir, f"cannot create the folder: {e.strerror or e}") from e
    if format is not None:  # one output format for every file: say once what it does not use
        from clconv import imageio

        for name in imageio.ignored_options(f"x.{format}", save_options):
            warn_line(f"{name} does not apply to {imageio.output_format(f'x.{format}')} outputs (ignored)")
    if passed_over and hints:  # said once the run is sure to start (bad usage first); not with -q
        many = len(passed_over) != 1
        warn_line(f"{shown(in_dir)}: passed over {len(passed_over)} subfolder{'s' if many else ''} "
                  f"(add --recursive to filter {'them' if many else 'it'} too)")
    otherwise = [t for t in tasks if t.status == "skipped" and t.warnings]
    if otherwise:  # --skip-existing would keep outputs of another filter: say so, with -q too
        first = otherwise[0]
        if len(otherwise) == 1:
            warn_line(f"{first.warnings[0]} (use --force to make it again)")
        else:
            warn_line(f"{shown(out_dir)}: {len(otherwise)} existing outputs were made with other settings "
                      f"({shown(first.output)}: {first.made_with}, ...); skipped (use --force to make them again)")
    settings = settings_of(options, rt.info.name, {
        "input_folder": shown(os.path.abspath(in_dir)), "output_folder": shown(os.path.abspath(out_dir)),
        "recursive": recursive, "subfolders_passed_over": [shown(p) for p in passed_over],
        "patterns": list(patterns), "format": format, "jobs": jobs, "skip_existing": skip_existing,
        "force": force, "device_platform": rt.info.platform})
    if save_options is not None:
        settings.update({"strip": save_options.strip, "quality": save_options.quality,
                         "compression": save_options.compression})
    result = BatchResult(tasks, settings, 0.0)
    start = time.monotonic()
    todo = deque(t for t in tasks if t.status == "pending")
    progress = Progress(progress_stream, len(tasks))
    counts = {"done": len(tasks) - len(todo), "failed": sum(t.status == "failed" for t in tasks), "processed": 0}
    plans: dict = {}

    def say(message: str, task: Task | None = None) -> None:
        progress.clear()
        warn_line(message)
        if task is not None:
            task.warnings.append(message)

    def finished(task: Task, error: str | None, pixels: int | None = None) -> None:
        task.status, task.error = ("failed", error) if error else ("ok", None)
        task.pixels = pixels if not error else None
        task.seconds = time.monotonic() - task.started
        counts["done"] += 1
        counts["processed"] += 1
        counts["failed"] += bool(error)
        progress.update(counts["done"], counts["failed"], counts["processed"])

    limit = 2 * jobs + 2
    scratch = tempfile.mkdtemp(prefix="clconv-batch-")
    pool = _pool(jobs)
    decoding: dict = {}  # future -> task
    encoding: dict = {}  # future -> (task, pixel count, temporary output)
    broken = []  # set when a worker died: the pool is replaced

    def submit(table: dict, value, task: Task, *call) -> None:
        try:
            table[pool.submit(*call)] = value
        except BrokenProcessPool:
            broken.append(True)
            finished(task, DEAD_WORKER)

    def raw(task: Task, kind: str) -> str:
        return os.path.join(scratch, f"{id(task)}-{kind}.raw")

    def filtered(task: Task, facts: dict) -> tuple:
        """Filter the decoded pixels on the device; return (raw file of the result, pixel count)."""
        import numpy as np

        from clconv.imageio import Image

        source = raw(task, "in")
        pixels = np.fromfile(source, dtype=facts["dtype"]).reshape(facts["shape"])
        os.unlink(source)
        image = Image(pixels, facts["has_alpha"], facts["color"], facts["meta"], task.input)
        result = filter_image(rt, image, options, task.output, plans)
        target = raw(task, "out")
        result.tofile(target)
        facts = dict(facts, shape=result.shape, dtype=result.dtype.str)
        return target, facts, int(result.shape[0] * result.shape[1])

    try:
        progress.update(counts["done"], counts["failed"], 0, force=True)
        while todo or decoding or encoding:
            while todo and len(decoding) + len(encoding) < limit:
                task = todo.popleft()
                task.started = time.monotonic()
                submit(decoding, task, task, _decode, task.input, raw(task, "in"), options.gray, options.max_pixels)
            done, _ = wait(list(decoding) + list(encoding), return_when=FIRST_COMPLETED)
            for future in done:
                if future in decoding:
                    task = decoding.pop(future)
                    facts, error, warnings = _outcome(future, broken)
                    for message in warnings:
                        say(message, task)
                    if error:
                        finished(task, error)
                        continue
                    filtering: list = []
                    try:
                        try:
                            with collected_warnings() as filtering:  # said below, and recorded
                                source, facts, count = filtered(task, facts)
                        finally:
                            for message in filtering:
                                say(message, task)
                        os.makedirs(os.path.dirname(task.output) or ".", exist_ok=True)
                    except ClconvError as e:
                        finished(task, e.cause)
                        continue
                    except MemoryError:
                        finished(task, "out of memory while filtering")
                        continue
                    except OSError as e:
                        finished(task, f"cannot write: {e.strerror or e}")
                        continue
                    temporary = temporary_path(task.output)
                    submit(encoding, (task, count, temporary), task, _encode, source, facts, task.output, temporary,
                           save_options)
                else:
                    _, error, warnings = _outcome(future, broken)
                    for message in warnings:
                        say(message, encoding[future][0])
                    # An interrupt between the rename and the record would leave a written file
                    # the report does not count: SIGINT/SIGTERM wait until both are done.
                    with _signals_deferred():
                        task, count, temporary = encoding.pop(future)
                        if error is None:
                            try:
                                commit(temporary, task.output)
                            except ClconvError as e:
                                error = e.cause
                        else:
                            discard(temporary)
                        discard(raw(task, "out"))
                        finished(task, error, count)
            if broken and not decoding and not encoding:
                pool.shutdown(wait=False)
                pool = _pool(jobs)  # a worker died (killed, out of memory): its files failed, go on
                broken.clear()
    except BaseException:
        _stop_pool(pool)  # first: no worker may create a file after the clean-up below
        result.interrupted = True
        for task in decoding.values():
            task.status = "pending"
        for task, _, temporary in encoding.values():
            task.status = "pending"
            discard(temporary)
        say(f"{shown(out_dir)}: stopped after {counts['done']} of {len(tasks)} files, no partial file left; "
            "run again with --skip-existing to finish")
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        result.seconds = time.monotonic() - start
        if not result.interrupted:
            pool.shutdown(wait=True)
        progress.update(counts["done"], counts["failed"], counts["processed"], force=True)
        progress.finish()
        if report:
            write_report(report, result)
    return result


def _made_otherwise(output: str, options) -> str | None:
    """How an existing ``output`` was made, where its record says other filter settings than
    ``options``; None when they agree or it has no record (another program's, or --strip)."""
    from clconv.files import settings_in
    from clconv.imageio import read_provenance

    made = settings_in(read_provenance(output))
    return made if made is not None and made != options.describe() else None


DEAD_WORKER = "its worker process died (killed, or out of memory)"


@contextlib.contextmanager
def _signals_deferred():
    """SIGINT and SIGTERM that arrive inside the block are delivered right after it (an ignored
    signal stays ignored). Python runs signal handlers in the main thread, which this is."""
    caught: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    held = [s for s, handler in previous.items() if handler not in (signal.SIG_IGN, None)]
    for s in held:
        signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s in held:
            signal.signal(s, previous[s])
        for signum in caught:
            signal.raise_signal(signum)


def _outcome(future, broken: list):
    """(value, error, warnings) of a worker's call; a dead worker is a failure of its file."""
    try:
        return future.result()
    except BrokenProcessPool:
        broken.append(True)
        return None, DEAD_WORKER, []
    except Exception as e:  # a bug in a worker: that file fails, the run goes on
        return None, f"internal error: {type(e).__name__}: {e}", []
