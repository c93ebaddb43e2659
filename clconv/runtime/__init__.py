"""The one place that owns OpenCL: device choice, context, queue, compiled programs.

Only this package imports pyopencl. ``get_runtime(spec)`` returns one Runtime per device for the
whole process; each program is built once per Runtime (PoCL's own kernel cache then serves
later processes) and each kernel fetched once. Its modules, by job:

* choice.py: the request (--device, CLCONV_DEVICE, PYOPENCL_CTX) and the choice over a device
  list, pure Python; CLCONV_CODE_PATH;
* platforms.py: the OpenCL platforms and devices, listed once;
* device.py: Runtime, one open device (context, queue, programs, buffers);
* probe.py: the build and first launch a device passes before it is used;
* device_cache.py: which ICD gave the default device, remembered per machine;
* here: opening the process's Runtime (get_runtime) and the device thread (prefetch).

Start-up of the command line (``clconv apply``), see the README's "Start-up":

* ``prefetch(spec)`` opens the device in a background thread (import pyopencl,
  list the platforms, build the probe program and run it once: the OpenCL calls release the GIL)
  while the main thread parses options and decodes the image; ``get_runtime``
  then joins it.
* ``enable_device_cache()`` (device_cache.py) loads only the OpenCL library that gave the
  default device last time; if it does not give that device, the process runs itself again
  with the full enumeration.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading

from clconv.errors import BuildError, ClconvError, DeviceError, warn
from clconv.runtime.choice import (
    CODE_PATH_VARIABLE,
    SIMULATORS,
    DeviceInfo,
    candidates,
    is_simulator,
    requested_spec,
    select_device,
)
from clconv.runtime.device import (
    BUILD_OPTIONS_VARIABLE,
    UNUSABLE_CPU_HINT,
    Runtime,
    filter_compiler_warnings,
    take_back_signals,
)

# The tests reach these through clconv.runtime, as before it was a package.
from clconv.runtime.device import _zero_copy as _zero_copy
from clconv.runtime.device_cache import _RETRY_ENV as _RETRY_ENV
from clconv.runtime.device_cache import (
    CACHE_ENTRIES,
    CACHE_SCHEMA,
    _cache,
    _CacheMiss,
    _entry_index,
    _fall_back,
    _record,
    _restore_environment,
    device_cache_path,
    enable_device_cache,
    user_cache_dir,
)
from clconv.runtime.device_cache import _stat as _stat
from clconv.runtime.platforms import _cl as _cl
from clconv.runtime.platforms import _platform_devices, list_devices
from clconv.runtime.probe import PROBE_PROGRAM, PROBE_SHAPE, SPECULATE_BELOW_S, SPECULATIVE_PROGRAMS, _first_launch

__all__ = [
    "BUILD_OPTIONS_VARIABLE",
    "DEVICE_LOCK",
    "CACHE_ENTRIES",
    "CACHE_SCHEMA",
    "CODE_PATH_VARIABLE",
    "PROBE_PROGRAM",
    "PROBE_SHAPE",
    "SIMULATORS",
    "SPECULATE_BELOW_S",
    "SPECULATIVE_PROGRAMS",
    "UNUSABLE_CPU_HINT",
    "DeviceInfo",
    "Runtime",
    "candidates",
    "device_cache_path",
    "enable_device_cache",
    "finish_prefetch",
    "get_runtime",
    "is_simulator",
    "list_devices",
    "prefetch",
    "requested_spec",
    "select_device",
    "user_cache_dir",
]

# A Runtime is not thread-safe (kernel arguments set on shared kernel objects, scratch buffers
# reused): the threads of one process that share it (dask's, a cluster worker's) filter one image
# or block at a time under this lock. Here, not in clconv.dask, so that taking it imports no dask.
DEVICE_LOCK = threading.Lock()
# _usable_runtime looks list_devices and _runtime_for up here, where a test can stand other
# devices in for them.


@functools.cache
def _runtime_for(platform_index: int, device_index: int) -> Runtime:
    for info, device in _platform_devices():
        if (info.platform_index, info.device_index) == (platform_index, device_index):
            return Runtime(info, device)
    raise DeviceError(f"{platform_index}:{device_index}", "device disappeared")  # pragma: no cover


@functools.cache
def _usable_runtime(spec: str | None) -> Runtime:
    entry = _cache.entry if spec is None else None
    failure: ClconvError | None = None
    deterministic = True  # every device passed over failed in a way that will repeat (see _record)
    named = (spec or "").lower() not in ("", "auto", "default", "cpu", "gpu")
    for info in candidates(spec, list_devices()):
        try:
            rt = _runtime_for(info.platform_index, info.device_index)
            rt.program(PROBE_PROGRAM)
            _first_launch(rt)
        except (DeviceError, BuildError) as exc:  # no context, no build, no launch: try the next device
            if entry is not None:
                raise _CacheMiss(f"{info.describe()}: {exc.cause}") from exc
            if named:
                raise
            failure = failure or exc
            expected = exc.cause == UNUSABLE_CPU_HINT  # an old PoCL beside a newer one: no news
            deterministic = deterministic and expected
            if not expected:
                warn(f"{info.describe()}: skipped: {str(exc.cause).splitlines()[0]}")
            continue
        if entry is not None and (info.index, info.name) != (_entry_index(entry), entry["device"]):
            raise _CacheMiss(f"the default device is {info.describe()}, not {entry['device']}")
        if spec is None and entry is None and deterministic:
            _record(rt)
        return rt
    assert failure is not None, "candidates() raises when no device fits, so one was tried"
    raise failure


def get_runtime(spec: str | None = None) -> Runtime:
    """The process-wide Runtime for ``spec`` (see requested_spec and candidates)."""
    if isinstance(spec, Runtime):
        return spec
    wanted = requested_spec(spec)
    pending = _join_prefetch()
    if pending is not None:  # the device thread's builds ran: builds in this thread take them back themselves
        take_back_signals()
    if pending is not None and pending[0] == wanted:
        box = pending[1]
        if "runtime" in box:
            return box["runtime"]
        error = box.get("error")
        if isinstance(error, _CacheMiss):
            _fall_back(error)
        if isinstance(error, ClconvError):
            raise error
        # anything else (an import that failed in the thread): try again here, in the open
    try:
        return _usable_runtime(wanted)
    except _CacheMiss as miss:
        _fall_back(miss)
    finally:
        _restore_environment()


# ------------------------------------------------------------------------------------------
# prefetch: open the device while the main thread does other work

_prefetch: tuple | None = None  # (spec, thread, box, ready) until taken by get_runtime
_prefetch_thread: tuple | None = None  # (thread, box) until finish_prefetch


def prefetch(spec: str | None = None) -> None:
    """Start opening the device for ``spec`` in a background thread; ``get_runtime`` takes it.
    Errors are kept and raised by ``get_runtime``, in the main thread, as if it had found them.
    For the command line only: it filters pyopencl's compiler warnings out for the process."""
    global _prefetch, _prefetch_thread
    if _prefetch is not None or _prefetch_thread is not None:
        return
    wanted = requested_spec(spec)
    box: dict = {}
    ready = threading.Event()
    try:  # imports pyopencl: imports hold the GIL, so here, first; the thread then waits in OpenCL, without it
        filter_compiler_warnings()
    except (ClconvError, AttributeError):
        pass

    def work():
        # Ctrl-C and SIGTERM are for the main thread, which acts on them; delivered here they
        # would only interrupt the driver's system calls. Threads the driver starts from here
        # (PoCL's workers) inherit the mask.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            box["runtime"] = rt = _usable_runtime(wanted)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            box["error"] = exc
            return
        finally:
            ready.set()
        if rt.build_seconds.get(PROBE_PROGRAM, 0.0) < SPECULATE_BELOW_S:
            for cl_file in SPECULATIVE_PROGRAMS:
                if box.get("stop"):  # the command is over (an early error): nothing to prepare
                    break
                with contextlib.suppress(Exception):  # if it is needed, the main thread says why
                    rt.program(cl_file)

    thread = threading.Thread(target=work, name="clconv-device")
    _prefetch = (wanted, thread, box, ready)
    _prefetch_thread = (thread, box)
    thread.start()


def _join_prefetch():
    """Wait until the prefetched device is open (or failed); (spec, box) once, then None."""
    global _prefetch
    pending, _prefetch = _prefetch, None
    if pending is None:
        return None
    wanted, _thread, box, ready = pending
    ready.wait()
    _restore_environment()
    return wanted, box


def finish_prefetch() -> None:
    """Let the device thread end before the process does (it may be inside the OpenCL driver)."""
    global _prefetch_thread
    pending, _prefetch_thread = _prefetch_thread, None
    _join_prefetch()
    if pending is not None:
        pending[1]["stop"] = True
        pending[0].join()
