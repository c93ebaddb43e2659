"""Runtime: one open device, with its context, profiling queue, compiled programs, kernels,
scratch buffers and per-device caches. Opened once per device by clconv.runtime.get_runtime."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import threading
import time
import warnings
from typing import TYPE_CHECKING

from clconv.errors import WARNINGS_LOCK, BuildError, DeviceError
from clconv.runtime.choice import DeviceInfo, _code_path, _forced_kind, is_simulator
from clconv.runtime.platforms import _cl

if TYPE_CHECKING:  # (pyopencl is imported by this package only, and when a device is opened)
    from pyopencl import Buffer as Buffer  # what alloc, scratch, upload and wrap return

BUILD_OPTIONS_VARIABLE = "CLCONV_BUILD_OPTIONS"

UNUSABLE_CPU_HINT = (
    "this PoCL's LLVM cannot compile for this CPU (the pocl-binary-distribution wheel has LLVM 14, "
    "older than CPUs such as AMD Zen 4/5); install the system PoCL, e.g. apt-get install pocl-opencl-icd"
)


def _zero_copy(cl, info: DeviceInfo, device) -> bool:
    """Whether the device works in host memory (CL_DEVICE_HOST_UNIFIED_MEMORY: CPUs, integrated
    GPUs), so that a buffer over the caller's array costs no copy. On a discrete GPU the driver
    would copy such a buffer in and out behind every call: there clconv copies, once each way.
    CLCONV_CODE_PATH forces the strategy of the kind it names, so the CI's GPU-path run
    exercises the copies on the PoCL CPU device."""
    forced = _forced_kind()
    if forced:
        return forced == "cpu"
    if is_simulator(info):  # nothing to save there, and Oclgrind's uninitialised-value check
        return False  # counts USE_HOST_PTR memory as never written (README "Devices")
    try:
        return bool(device.host_unified_memory)
    except (cl.Error, AttributeError):  # deprecated since OpenCL 2.0: a driver may refuse the query
        return info.kind == "cpu"


# In the command line (prefetch), pyopencl's CompilerWarning is filtered out for the whole
# process, so that builds need no catch_warnings (process-global state: the main thread's image
# warnings would wait for a build). Library use keeps the block, under WARNINGS_LOCK.
_compiler_warnings_filtered = False


def filter_compiler_warnings() -> None:
    """Filter pyopencl's CompilerWarning out for the whole process (the command line only)."""
    global _compiler_warnings_filtered
    cl = _cl()
    warnings.filterwarnings("ignore", category=cl.CompilerWarning)
    _compiler_warnings_filtered = True


def take_back_signals() -> None:
    """Make Python's handlers of SIGINT and SIGTERM the process's own again. The first OpenCL
    build installs LLVM's (it removes the compiler's temporary files on those signals), so an
    interrupt made the builds still running fail aloud ("1 error generated."), whatever the
    program did with the signal. LLVM installs them once per process. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not None:  # None: not set from Python, left alone
            signal.signal(signum, handler)


@contextlib.contextmanager
def _quiet_build():
    if _compiler_warnings_filtered:
        yield
        return
    with WARNINGS_LOCK, warnings.catch_warnings():
        # pyopencl warns on non-empty build logs; clconv reports its own errors.
        warnings.simplefilter("ignore")
        yield


class Runtime:
    """Context, profiling queue, compiled programs and caches of one device."""

    def __init__(self, info: DeviceInfo, device):
        cl = _cl()
        self.cl = cl
        self.info = _code_path(info)
        self.device = device
        try:
            self.context = cl.Context([device])
            self.queue = cl.CommandQueue(self.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
        except cl.Error as exc:
            raise DeviceError(info.describe(), f"cannot open the device ({exc})") from exc
        self.builds = 0  # programs built by this runtime: repeated calls must not rebuild
        # CPU-only code paths (e.g. unaligned word loads) are compiled in with -DCLCONV_CPU.
        self.build_options = ["-DCLCONV_CPU=1"] if self.info.kind == "cpu" else []
        # Extra options for every build, e.g. -cl-opt-disable around a driver's optimiser bug.
        self.build_options += shlex.split(os.environ.get(BUILD_OPTIONS_VARIABLE, ""))
        self._programs: dict[str, object] = {}
        self._recorders: list[list] = []
        self._scratch: dict[str, tuple] = {}
        self._caches: dict[str, object] = {}  # see cache
        # the largest single buffer, and all of them (clconv.tiling keeps a run within a share):
        # bigger images go in tiles
        self.max_alloc, self.global_mem = info.max_alloc, info.global_mem
        # wrap/read_back: the caller's arrays used in place (True), or copied to and from the device
        self.zero_copy = _zero_copy(cl, info, device)
        checked = is_simulator(info) and os.environ.get("OCLGRIND_UNINITIALIZED", "0") not in ("", "0")
        self._retained: list | None = [] if checked else None  # see _made
        self._host_in_use: list = []  # zero-copy buffers until the queue has finished (see wrap)
        self._kernels: dict[tuple[str, str], object] = {}
        self._typed_kernels: set[tuple[str, str]] = set()
        self._group_limits: dict[int, int] = {}  # id(kernel) -> CL_KERNEL_WORK_GROUP_SIZE
        self._lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}
        # CPU seconds of the building thread per program: PoCL compiles in the calling thread, so
        # a build from its kernel cache takes ~0.03 s and a cold one ~1 s however loaded the
        # machine is (wall time told them apart wrongly on a busy machine).
        self.build_seconds: dict[str, float] = {}

    def program(self, cl_file: str):
        """The built program ``cl_file``, once per runtime, with its build defines (clconv.constants
        PROGRAM_DEFINES). The name may carry other values after it (``"separable.cl -DCOL_ROWS=2"``,
        see ``variant``): a variant built and cached apart."""
        prog = self._programs.get(cl_file)
        if prog is not None:
            return prog
        with self._lock:
            lock = self._build_locks.setdefault(cl_file, threading.Lock())
        with lock:  # the device thread may be building it already (prefetch): built once
            prog = self._programs.get(cl_file)
            if prog is None:
                from clconv.constants import build_defines
                from clconv.resources import program_source

                name, *overrides = cl_file.split()
                source = program_source(name)
                options = self.build_options + build_defines(name, overrides)
                start = time.thread_time()
                try:
                    with _quiet_build():
                        prog = self.cl.Program(self.context, source).build(options=options)
                except self.cl.Error as exc:
                    if "unknown target CPU" in str(exc):
                        raise DeviceError(self.info.describe(), UNUSABLE_CPU_HINT) from exc
                    raise BuildError(f"cl/{name}", f"OpenCL build failed:\n{exc}") from exc
                self.build_seconds[cl_file] = time.thread_time() - start
                take_back_signals()
                self.builds += 1
                self._programs[cl_file] = prog
        return prog

    # Fixed local sizes: PoCL compiles one work-group function per (kernel, local
    # size), so letting it pick per image size would recompile for new shapes.
    LOCAL_SIZE = (64, 1, 1)

    def launch(self, cl_file: str, name: str, global_size: tuple[int, ...], *args, local=None):
        """Enqueue a kernel over at least ``global_size`` work-items (kernels bound-check).

        ``local`` overrides the fixed local size for kernels tuned to their own."""
        local = tuple(local) if local is not None else self.LOCAL_SIZE[: len(global_size)]
        kern = self.kernel(cl_file, name)
        if (cl_file, name) not in self._typed_kernels:
            # Scalar types fixed from the first launch's numpy scalars: pyopencl then packs them
            # in one call, where it otherwise tries each argument type in turn (10 us a scalar on
            # PoCL: 0.24 ms of a small image's 1 ms filter call with direct's 24 arguments).
            import numpy as np

            kern.set_scalar_arg_dtypes([a.dtype if isinstance(a, np.generic) else None for a in args])
            self._typed_kernels.add((cl_file, name))
        local = self._fitting(kern, local)
        padded = tuple(-(-g // n) * n for g, n in zip(global_size, local))
        with self.device_errors(f"launching {name} ({cl_file.split()[0]})"):
            kern.set_args(*args)
            event = self.cl.enqueue_nd_range_kernel(self.queue, kern, padded, local)
        for events in self._recorders:
            events.append(event)
        return event

    @contextlib.contextmanager
    def recording(self):
        """Collects the events of every kernel launched inside the block (for device-only timings)."""
        events: list = []
        self._recorders.append(events)
        try:
            yield events
        finally:
            self._recorders.remove(events)

    @staticmethod
    def device_seconds(events) -> float:
        """Total kernel execution time of ``events`` (they must have completed), from profiling."""
        return sum(e.profile.end - e.profile.start for e in events) * 1e-9

    def alloc(self, nbytes: int) -> Buffer:
        """A device buffer of at least one byte."""
        try:
            return self._made(self.cl.Buffer(self.context, self.cl.mem_flags.READ_WRITE, max(int(nbytes), 1)))
        except self.cl.Error as exc:
            raise DeviceError(self.info.describe(), f"cannot allocate {nbytes} bytes ({exc})") from exc

    def _made(self, buffer):
        """``buffer``, kept alive for the whole process while Oclgrind's uninitialised-value
        checker runs: the checker's state follows buffer numbers, which Oclgrind hands on from
        released buffers to new ones (benchmarks/repro/oclgrind_uninitialized_reuse.py)."""
        if self._retained is not None:
            self._retained.append(buffer)
        return buffer

    def scratch(self, name: str, nbytes: int) -> Buffer:
        """A device buffer kept for reuse under ``name`` (grown when too small): intermediates
        that would otherwise be new memory, and page faults, on every call. Safe because the
        queue is in order; the largest size used stays allocated."""
        held = self._scratch.get(name)
        if held is None or held[0] < nbytes:
            held = (int(nbytes), self.alloc(nbytes))
            self._scratch[name] = held
        return held[1]

    def cache(self, name: str, make):
        """The object kept on this runtime under ``name``, made by ``make()`` the first time: a
        module's per-device state (the FFT's twiddles and spectra, the tuned measurements), which
        lives as long as the device's buffers and programs, and no longer."""
        held = self._caches.get(name)
        if held is None:  # two threads may both make one: the first stored is the one kept
            held = self._caches.setdefault(name, make())
        return held

    @contextlib.contextmanager
    def device_errors(self, doing: str):
        """An OpenCL error inside the block (out of resources, an allocation the device refuses,
        a failed launch) becomes a DeviceError naming the device with a one-line cause, never
        an internal error with a traceback."""
        try:
            yield
        except self.cl.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DeviceError(self.info.describe(), f"{doing}: {first}") from exc

    def upload(self, array) -> Buffer:
        """A new read-only device buffer holding a copy of ``array``."""
        flags = self.cl.mem_flags.READ_ONLY | self.cl.mem_flags.COPY_HOST_PTR
        with self.device_errors(f"cannot copy {array.nbytes} bytes to the device"):
            return self._made(self.cl.Buffer(self.context, flags, hostbuf=array))

    def wrap(self, array, writable: bool = False) -> Buffer:
        """A device buffer standing for a numpy array: the caller's input (``writable`` False) or
        the output it will receive (``writable`` True, every value written by the kernels, so
        never uploaded). With ``zero_copy``, a buffer over the array's own memory
        (USE_HOST_PTR); else an upload, or a plain device buffer. Read the result back with
        ``read_back``, never by reading ``array`` directly, and keep every wrapped buffer until
        then: a zero-copy buffer keeps its host memory (the array, or a copy made here) only
        as long as it lives, and the queued kernels read that memory. The runtime holds each
        one too, until a read_back has seen the queue finish: a caller unwound by an exception
        (Ctrl-C, a failed launch) would otherwise free that memory while kernels that use it
        are still queued, which OpenCL forbids (USE_HOST_PTR memory must outlive them)."""
        import numpy as np

        if not self.zero_copy:
            return self.alloc(array.nbytes) if writable else self.upload(np.ascontiguousarray(array))
        if not writable and not (array.flags.c_contiguous and array.flags.writeable):
            array = np.array(array, order="C")  # USE_HOST_PTR takes writable C-ordered memory (a copy)
        mf = self.cl.mem_flags
        access = mf.READ_WRITE if writable else mf.READ_ONLY
        with self.device_errors(f"cannot use {array.nbytes} bytes of host memory on the device"):
            buffer = self.cl.Buffer(self.context, access | mf.USE_HOST_PTR, hostbuf=array)
        self._host_in_use.append(buffer)
        return buffer

    def read_back(self, buffer, array) -> None:
        """Make a ``wrap``-ped array hold the device's results: a map (and unmap) of its own
        memory with ``zero_copy``, else a copy from the device."""
        if not self.zero_copy:
            self.download(buffer, array)
            return
        with self.device_errors("running the filter"):
            mapped, _ = self.cl.enqueue_map_buffer(
                self.queue, buffer, self.cl.map_flags.READ, 0, array.shape, array.dtype, is_blocking=True
            )
            mapped.base.release(self.queue)
            self.queue.finish()
        self._host_in_use.clear()  # one image at a time per Runtime (DEVICE_LOCK across threads)

    @property
    def memory(self) -> str:
        """The memory strategy in words (--explain)."""
        return "zero-copy host memory" if self.zero_copy else "copies to and from device memory"

    def download(self, buffer, array):
        """Copy ``buffer`` into ``array`` (blocking) and return ``array``."""
        with self.device_errors("running the filter"):
            self.cl.enqueue_copy(self.queue, array, buffer, is_blocking=True)
        return array

    def copy(self, dst, src, nbytes: int, dst_offset: int = 0, src_offset: int = 0):
        """Device-to-device copy of ``nbytes`` (enqueued only)."""
        return self.cl.enqueue_copy(
            self.queue, dst, src, byte_count=int(nbytes), src_offset=int(src_offset), dst_offset=int(dst_offset)
        )

    def fitted_local(self, cl_file: str, name: str, local: tuple) -> tuple:
        """The local size ``launch`` will use for ``local``: for kernels that size their global
        range by whole work-groups (one tile per group)."""
        return self._fitting(self.kernel(cl_file, name), tuple(local))

    def _fitting(self, kern, local: tuple) -> tuple:
        """``local`` shrunk along its first axis (halving) until the work-group fits the kernel's
        limit on this device (CL_KERNEL_WORK_GROUP_SIZE: registers, private memory)."""
        limit = self._group_limits.get(id(kern))
        if limit is None:
            with self.device_errors("querying a kernel's work-group limit"):
                limit = int(kern.get_work_group_info(self.cl.kernel_work_group_info.WORK_GROUP_SIZE, self.device))
            self._group_limits[id(kern)] = limit
        first, rest = local[0], 1
        for size in local[1:]:
            rest *= size
        while first > 1 and first * rest > limit:
            first //= 2
        return (first, *local[1:])

    def kernel(self, cl_file: str, name: str):
        """A cached cl.Kernel (pyopencl makes a new one on every attribute access)."""
        key = (cl_file, name)
        kern = self._kernels.get(key)
        if kern is None:
            kern = self.cl.Kernel(self.program(cl_file), name)
            self._kernels[key] = kern
        return kern
