"""What runs in each Dask worker process of ``clconv batch --cluster``: the device and one file's work.

:class:`RuntimePlugin` opens the device once per worker process (device choice, context; the
programs are compiled on first use and kept by that Runtime), never per file, and imports what
a file needs as the worker starts. A worker that opened it offers the device_resource the
client's tasks ask for when some workers cannot; one whose device cannot be opened keeps the
one-line cause, and every file it is given anyway fails with it.

:func:`filter_file` is a whole file on the worker: decode, filter, encode into the temporary
name the client chose, rename onto the output (both on the worker's filesystem, which every
worker shares); a remote URL's input is read through a local copy and its output put in one
put_file (clconv.batch.remote). The functions are those of the local batch (imageio.load, files.filter_image,
imageio.writer, clconv.atomic), so outputs are the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from distributed import WorkerPlugin

from clconv.atomic import commit, discard, write_temporary
from clconv.errors import ClconvError, collected_warnings

if TYPE_CHECKING:
    from clconv.files import FilterOptions
    from clconv.imageio.save import SaveOptions
    from clconv.runtime.device import Runtime


@dataclass(frozen=True)
class FileJob:
    """What every file of one run needs, sent to each worker once (scattered): the device spec,
    the validated filter options, the save options (with provenance) and the run's id."""

    device: str | None
    options: FilterOptions
    save_options: SaveOptions
    run_id: str


class RuntimePlugin(WorkerPlugin):
    """Opens the device ``device`` in each worker process as it starts (or joins); ``quiet``:
    distributed's log lines off there as in the client (see quiet_logs)."""

    def __init__(self, device: str | None, quiet: bool = False):
        self.device, self.quiet = device, quiet

    async def setup(self, worker) -> None:
        """Open the device and import the modules of a file's work as the worker starts, so that
        its first file does not wait for them. One that cannot be imported fails each file, as before.
        A worker that opened the device offers device_resource (one per thread): the client
        sends files only there when some workers cannot open it."""
        if self.quiet:
            quiet_logs()
        opened = not isinstance(runtime_of(self.device), str)
        with contextlib.suppress(ImportError):
            from clconv import files, imageio  # noqa: F401
            from clconv.batch import remote  # noqa: F401
        resource, threads = device_resource(self.device), worker.state.nthreads
        if opened and worker.state.total_resources.get(resource) != threads:
            await worker.set_resources(**{resource: threads})


def device_resource(device: str | None) -> str:
    """The Dask worker resource a worker that opened ``device`` offers (see RuntimePlugin)."""
    return f"clconv-device:{device or 'default'}"


def quiet_logs() -> None:
    """distributed's log lines (a worker lost, a connection closed, a heartbeat that failed as the
    cluster stopped) stay off stderr: what happened to each file is said the clconv way, and the
    report holds it."""
    for name in ("distributed", "distributed.client", "distributed.scheduler", "distributed.worker",
                 "distributed.nanny", "distributed.core", "distributed.comm"):  # fmt: skip
        logging.getLogger(name).setLevel(logging.CRITICAL)


_STATE_LOCK = threading.Lock()
# device spec -> the Runtime, or the cause (str) why it cannot be opened
_RUNTIMES: dict[str | None, Runtime | str] = {}
_PLANS: OrderedDict = OrderedDict()  # run id -> that run's filter plans (a few recent runs)
_ACTIVE = [0]  # files being filtered in this process now (see stop_run)
_STOPPED: set = set()  # ids of runs interrupted in the client: their files are no longer renamed into place


def runtime_of(device: str | None) -> Runtime | str:
    """This process's Runtime for ``device``, opened once; a str: the cause why it cannot be."""
    from clconv.runtime import get_runtime

    with _STATE_LOCK:
        if device not in _RUNTIMES:
            try:
                _RUNTIMES[device] = get_runtime(device)
            except ClconvError as e:
                _RUNTIMES[device] = str(e)
        return _RUNTIMES[device]


def device_facts(device: str | None) -> dict:
    """The worker's device for the report: {"name", "platform"}, or {"error": cause}."""
    rt = runtime_of(device)
    if isinstance(rt, str):
        return {"error": rt}
    return {"name": rt.info.name, "platform": rt.info.platform}


def _plans_of(run_id: str) -> dict:
    with _STATE_LOCK:
        if run_id not in _PLANS:
            _PLANS[run_id] = {}
            while len(_PLANS) > 4:
                _PLANS.popitem(last=False)
        return _PLANS[run_id]


def filter_files(job: FileJob, files: list) -> list:
    """:func:`filter_file` of each (input, output, temporary) of ``files``, in order; files not
    started when the client was interrupted are left alone."""
    return [filter_file(job, *file) if job.run_id not in _STOPPED else ("interrupted", None, []) for file in files]


def filter_file(job: FileJob, input: str, output: str, temporary: str) -> tuple:
    """``input`` filtered into ``output`` through ``temporary``: (error or None, pixel count or
    None, warnings). A problem with the file is its error, never an exception."""
    with _STATE_LOCK:
        _ACTIVE[0] += 1
    try:
        with collected_warnings() as warnings:
            try:
                return None, _filter_and_write(job, input, output, temporary), warnings
            except ClconvError as e:
                return e.cause, None, warnings
            except MemoryError:
                return "out of memory", None, warnings
            except OSError as e:
                return f"cannot write: {e.strerror or e}", None, warnings
    finally:
        with _STATE_LOCK:
            _ACTIVE[0] -= 1


def _filter_and_write(job: FileJob, input: str, output: str, temporary: str) -> int:
    from clconv import imageio
    from clconv.batch import remote  # fsspec is imported only for a URL
    from clconv.files import filter_image
    from clconv.runtime import DEVICE_LOCK  # the Runtime is not thread-safe: one image at a time

    rt = runtime_of(job.device)
    if isinstance(rt, str):
        raise ClconvError(None, rt)
    image = remote.load(input, gray=job.options.gray, max_pixels=job.options.max_pixels)
    with DEVICE_LOCK:
        result = filter_image(rt, image, job.options, output, _plans_of(job.run_id))
    write = imageio.writer(output, result, has_alpha=image.has_alpha, color=image.color, meta=image.meta,
                           options=job.save_options)  # fmt: skip
    if remote.is_remote(output):  # one put of the whole file (no temporary key)
        remote.upload(write, output, stopped=lambda: job.run_id in _STOPPED)
        return int(result.shape[0] * result.shape[1])
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    discard(temporary)  # left by an attempt whose worker was killed: this task is its retry
    write_temporary(temporary, output, write)
    if job.run_id in _STOPPED:  # the client was interrupted and will not count this file: leave no output
        discard(temporary)
        raise ClconvError(None, "interrupted")
    commit(temporary, output)
    return int(result.shape[0] * result.shape[1])


async def stop_run(run_id: str, seconds: float) -> int:
    """The client of run ``run_id`` was interrupted (its futures are cancelled): a file of it being
    filtered here now runs to its end but is not renamed into place. Wait (at most ``seconds``)
    until none is being filtered; returns how many still are."""
    _STOPPED.add(run_id)
    deadline = time.monotonic() + seconds
    while _ACTIVE[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return _ACTIVE[0]
