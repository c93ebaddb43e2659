"""Where decoding and encoding run: worker processes on this machine (``--jobs`` of them).

Pixels travel through raw files in a private scratch folder, not through the
pool's pipes: only small messages are queued, so no pipe ever fills (a full
one would hang the exit after an interrupt), and no process pickles
megabytes. A worker writes an output only as the temporary file the main
process named, so the main process can remove it if the worker is stopped.

The pipeline uses nothing but :class:`LocalWorkers`' methods, so another
executor (a cluster) can take its place behind the same steps.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from clconv.atomic import discard
from clconv.errors import ClconvError, collected_warnings

DEAD_WORKER = "its worker process died (killed, or out of memory)"


class WorkerDied(Exception):
    """A call could not be handed to a worker: the pool lost one (the file fails with DEAD_WORKER)."""


class LocalWorkers:
    """A process pool that decodes inputs and encodes results, and the scratch folder between it
    and the main process. A pool that lost a worker is ``broken`` until :meth:`restart`."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.scratch = tempfile.mkdtemp(prefix="clconv-batch-")
        self.pool = _start_pool(jobs)
        self.broken = False
        self.stopped = False

    def decode(self, task, gray: bool, max_pixels: int) -> Future:
        """Start decoding ``task.input``; the future's result is (facts, error, warnings)."""
        return self._submit(_decode, task.input, self._raw(task, "in"), gray, max_pixels)

    def decoded_pixels(self, task, facts: dict):
        """The pixels that ``task``'s finished decode made (taken once: the raw file goes)."""
        import numpy as np

        source = self._raw(task, "in")
        pixels = np.fromfile(source, dtype=facts["dtype"]).reshape(facts["shape"])
        os.unlink(source)
        return pixels

    def hand_over(self, task, pixels) -> None:
        """Put ``task``'s filtered pixels where its encode will read them."""
        pixels.tofile(self._raw(task, "out"))

    def encode(self, task, facts: dict, temporary: str, save_options) -> Future:
        """Start encoding the handed-over pixels into the file ``temporary`` (named for
        ``task.output``); the future's result is (None, error, warnings)."""
        return self._submit(_encode, self._raw(task, "out"), facts, task.output, temporary, save_options)

    def release(self, task) -> None:
        """Drop what was kept for ``task``'s encode, which has ended."""
        discard(self._raw(task, "out"))

    def wait(self, futures: list[Future], timeout: float | None = None) -> set[Future]:
        """Block until at least one of ``futures`` has ended, or ``timeout`` seconds; return those that have."""
        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return done

    def outcome(self, future: Future) -> tuple:
        """(value, error, warnings) of a worker's call; a dead worker is a failure of its file."""
        try:
            return future.result()
        except BrokenProcessPool:
            self.broken = True
            return None, DEAD_WORKER, []
        except Exception as e:  # noqa: BLE001 - a bug in a worker: that file fails, the run goes on
            return None, f"internal error: {type(e).__name__}: {e}", []

    def restart(self) -> None:
        """A fresh pool in place of a broken one; only once nothing is in flight."""
        self.pool.shutdown(wait=False)
        self.pool = _start_pool(self.jobs)
        self.broken = False

    def stop(self) -> None:
        """Stop at once (an interrupt): a worker holds nothing that must be saved."""
        self.stopped = True
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + 2.0
        for p in processes:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1.0)

    def close(self) -> None:
        """Remove the scratch folder; let the workers exit (unless stopped already)."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        if not self.stopped:
            self.pool.shutdown(wait=True)

    def _raw(self, task, kind: str) -> str:
        return os.path.join(self.scratch, f"{id(task)}-{kind}.raw")

    def _submit(self, call, *args) -> Future:
        try:
            return self.pool.submit(call, *args)
        except BrokenProcessPool:
            self.broken = True
            raise WorkerDied from None


_UNIX_PATH_MAX = 107  # sockaddr_un.sun_path on Linux, less its terminating NUL


def _start_pool(jobs: int) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    # Never fork a process that holds an OpenCL context (PoCL's threads do not survive it). The
    # fork server listens on a Unix socket in $TMPDIR, whose path may hold 107 bytes at most:
    # a deep TMPDIR takes spawn (slower to start, same result).
    socket_path = os.path.join(tempfile.gettempdir(), "pymp-12345678", "listener-12345678")
    fits = len(os.fsencode(socket_path)) <= _UNIX_PATH_MAX
    method = "forkserver" if "forkserver" in methods and fits else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["clconv.imageio"])
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init)


# What runs in a worker process


def _worker_init() -> None:
    # The main process handles Ctrl-C for everyone; a worker just stops when told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _decode(path: str, scratch: str, gray: bool, max_pixels: int):
    """Decode ``path`` into the raw file ``scratch``: (facts, error, warnings)."""
    from clconv.batch import remote  # a remote URL is read through a local copy (fsspec only then)

    with collected_warnings() as warnings:
        try:
            image = remote.load(path, gray=gray, max_pixels=max_pixels)
            image.pixels.tofile(scratch)
        except ClconvError as e:
            return None, e.cause, warnings
        except MemoryError:
            return None, "out of memory while decoding", warnings
        except OSError as e:
            return None, f"cannot pass the pixels on: {e.strerror or e}", warnings
        facts = {
            "shape": image.pixels.shape,
            "dtype": image.pixels.dtype.str,
            "has_alpha": image.has_alpha,
            "color": image.color,
            "meta": image.meta,
        }
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
            write = imageio.writer(
                output,
                pixels,
                has_alpha=facts["has_alpha"],
                color=facts["color"],
                meta=facts["meta"],
                options=save_options,
            )
            write_temporary(temporary, output, write)
        except ClconvError as e:
            return None, e.cause, warnings
        except MemoryError:
            return None, "out of memory while encoding", warnings
        return None, None, warnings
