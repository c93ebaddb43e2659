"""The one place that owns OpenCL: device choice, context, queue, compiled programs.

Only this module imports pyopencl. ``get_runtime(spec)`` returns one Runtime per
device for the whole process; each program is built once per Runtime (PoCL's
own kernel cache then serves later processes) and each kernel fetched once.

Start-up of the command line (``clconv apply``), see the README's "Start-up":

* ``prefetch(spec)`` opens the device in a background thread (import pyopencl,
  list the platforms, build the probe program and run it once: the OpenCL calls release the GIL)
  while the main thread parses options and decodes the image; ``get_runtime``
  then joins it.
* ``enable_device_cache()`` remembers, per machine and configuration, which
  OpenCL library (ICD) gave the default device, in ``$XDG_CACHE_HOME/clconv/
  device.json``, and on later runs loads only that ICD (``OCL_ICD_VENDORS``
  names the library, read by the ICD loader at its first call). It is used only
  when no device is named; if the one ICD does not give the remembered device,
  the process runs itself again with the full enumeration (``reexec``).
"""
from __future__ import annotations

import contextlib
import functools
import os
import shlex
import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace

from clconv.errors import WARNINGS_LOCK, BuildError, ClconvError, DeviceError, warn


@dataclass(frozen=True)
class DeviceInfo:
    platform_index: int
    device_index: int
    platform: str
    name: str
    kind: str  # "gpu", "cpu" or "other"
    compute_units: int
    global_mem: int
    max_alloc: int
    platform_version: str = ""  # CL_PLATFORM_VERSION: "OpenCL 3.0 PoCL 3.1+debian ..."

    @property
    def pocl_version(self) -> tuple[int, ...]:
        return _pocl_version(f"{self.platform} {self.platform_version}")

    @property
    def index(self) -> str:
        return f"{self.platform_index}:{self.device_index}"

    def describe(self) -> str:
        return f"{self.index} {self.name} ({self.kind}, {self.platform})"


def _cl():
    try:
        import pyopencl
    except ImportError as exc:  # pragma: no cover - pyopencl is a dependency
        raise DeviceError(None, f"pyopencl is not installed ({exc})") from exc
    return pyopencl


def _kind(cl, device) -> str:
    if device.type & cl.device_type.GPU:
        return "gpu"
    if device.type & cl.device_type.CPU:
        return "cpu"
    return "other"


@functools.cache
def _platform_devices():
    """(DeviceInfo, cl.Device) for every device of every platform, in platform order.

    With the device cache in use only the remembered ICD is loaded: its platform keeps the
    index it has in the full list, and anything unexpected raises _CacheMiss."""
    cl = _cl()
    entry = _cache.entry
    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:
        if entry is not None:
            raise _CacheMiss(f"no platform from {entry['library']}") from exc
        raise DeviceError(None, "no OpenCL platform found (install pocl-binary-distribution or a GPU driver)") from exc
    found = []
    for p_index, platform in enumerate(platforms):
        if entry is not None:
            if platform.name.strip() != entry["platform"]:
                continue
            p_index = entry["platform_index"]
        try:
            devices = platform.get_devices()
        except cl.Error:
            continue  # a platform with no usable devices
        for d_index, device in enumerate(devices):
            info = DeviceInfo(
                p_index,
                d_index,
                platform.name.strip(),
                device.name.strip(),
                _kind(cl, device),
                device.max_compute_units,
                device.global_mem_size,
                device.max_mem_alloc_size,
                platform.version.strip(),
            )
            found.append((info, device))
        if entry is not None:
            break
    if entry is not None and not any(info.index == _entry_index(entry) and info.name == entry["device"]
                                     for info, _ in found):
        raise _CacheMiss(f"{entry['library']} did not give {entry['device']}")
    if not found:
        raise DeviceError(None, "no OpenCL device found (install pocl-binary-distribution or a GPU driver)")
    return tuple(found)


def list_devices() -> list[DeviceInfo]:
    return [info for info, _ in _platform_devices()]


def requested_spec(spec: str | None) -> str | None:
    """--device, else CLCONV_DEVICE, else pyopencl's PYOPENCL_CTX, else None (the default choice)."""
    for value in (spec, os.environ.get("CLCONV_DEVICE"), os.environ.get("PYOPENCL_CTX")):
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


UNUSABLE_CPU_HINT = (
    "this PoCL's LLVM cannot compile for this CPU (the pocl-binary-distribution wheel has LLVM 14, "
    "older than CPUs such as AMD Zen 4/5); install the system PoCL, e.g. apt-get install pocl-opencl-icd"
)


def _pocl_version(platform: str) -> tuple[int, ...]:
    """(3, 1) for 'Portable Computing Language ... PoCL 3.1+debian'; () when not PoCL."""
    import re

    match = re.search(r"PoCL (\d+)\.(\d+)", platform)
    return tuple(int(g) for g in match.groups()) if match else ()


SIMULATORS = ("oclgrind",)  # platforms that simulate a device: used only when named


def is_simulator(info: DeviceInfo) -> bool:
    return any(name in info.platform.lower() for name in SIMULATORS)


def _default_rank(info: DeviceInfo) -> tuple:
    """Order within a kind for the default choice. GPUs: the most global memory first (a
    discrete card before an integrated one sharing host memory), then the most compute units.
    CPUs: PoCL before other implementations (rusticl's llvmpipe), newer PoCL builds first."""
    if info.kind == "gpu":
        return (-info.global_mem, -info.compute_units)
    return (0 if info.pocl_version else 1, tuple(-v for v in info.pocl_version), -info.compute_units)


def candidates(spec: str | None, devices: list[DeviceInfo]) -> list[DeviceInfo]:
    """Devices that fit ``spec``, best first. Only a kind ('cpu', 'gpu', default) has more
    than one: GPUs before CPUs for the default, each kind by _default_rank; simulators
    (Oclgrind) never, unless named."""
    key = (spec or "").lower()
    if key not in ("", "auto", "default", "cpu", "gpu"):
        return [select_device(spec, devices)]
    ranked = _ranked(key, devices)
    if not ranked:
        select_device(spec, devices)  # raises the "no such device" error
    return ranked


def _ranked(key: str, devices: list[DeviceInfo]) -> list[DeviceInfo]:
    kinds = {"cpu": ("cpu",), "gpu": ("gpu",)}.get(key, ("gpu", "cpu", "other"))
    ranked = [d for d in devices if d.kind in kinds and not is_simulator(d)]
    return sorted(ranked, key=lambda d: (kinds.index(d.kind), _default_rank(d)))


def select_device(spec: str | None, devices: list[DeviceInfo]) -> DeviceInfo:
    """Pure choice over a device list: None -> the first of candidates (a GPU if any, else a
    CPU, by _default_rank; never a simulator); 'cpu'/'gpu' likewise within the kind;
    'P:D' or 'P' (pyopencl's index form); else a case-insensitive substring of the
    device or platform name."""
    def unknown(why):
        listing = "; ".join(d.describe() for d in devices) or "none"
        return DeviceError(f"--device {spec}", f"{why} (available: {listing})")

    key = (spec or "").lower()
    if key in ("", "auto", "default", "cpu", "gpu"):
        ranked = _ranked(key, devices)
        if ranked:
            return ranked[0]
        if key in ("cpu", "gpu"):
            raise unknown(f"no {key.upper()} device")
        raise unknown("only simulators, which are never the default: name one with --device")
    parts = key.split(":")
    if all(p.isdigit() for p in parts) and 1 <= len(parts) <= 2:
        p_index = int(parts[0])
        d_index = int(parts[1]) if len(parts) == 2 else 0
        for d in devices:
            if (d.platform_index, d.device_index) == (p_index, d_index):
                return d
        raise unknown("no device with that index")
    for d in devices:
        if key in d.name.lower():
            return d
    for d in devices:
        if key in d.platform.lower():
            return d
    raise unknown("no device matches")


CODE_PATH_VARIABLE = "CLCONV_CODE_PATH"
BUILD_OPTIONS_VARIABLE = "CLCONV_BUILD_OPTIONS"


def _forced_kind() -> str | None:
    """The kind CLCONV_CODE_PATH names ('cpu' or 'gpu'), if any."""
    forced = os.environ.get(CODE_PATH_VARIABLE, "").strip().lower()
    return forced if forced in ("cpu", "gpu") else None


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
        return False        # counts USE_HOST_PTR memory as never written (README "Devices")
    try:
        return bool(device.host_unified_memory)
    except (cl.Error, AttributeError):  # deprecated since OpenCL 2.0: a driver may refuse the query
        return info.kind == "cpu"


def _code_path(info: DeviceInfo) -> DeviceInfo:
    """``info`` as the code paths see it: CLCONV_CODE_PATH=gpu (or cpu) makes a device take the
    other kind's paths (build defines, FFT private sizes, auto's rules), so the GPU path runs,
    and is tested, on the PoCL CPU device. The device's own listing is unchanged."""
    forced = _forced_kind()
    if forced and forced != info.kind:
        return replace(info, kind=forced)
    return info


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
        self._kernels: dict[tuple[str, str], object] = {}
        self._group_limits: dict[int, int] = {}  # id(kernel) -> CL_KERNEL_WORK_GROUP_SIZE
        self._lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}
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
                start = time.perf_counter()
                try:
                    with _quiet_build():
                        prog = self.cl.Program(self.context, source).build(options=options)
                except self.cl.Error as exc:
                    if "unknown target CPU" in str(exc):
                        raise DeviceError(self.info.describe(), UNUSABLE_CPU_HINT) from exc
                    raise BuildError(f"cl/{name}", f"OpenCL build failed:\n{exc}") from exc
                self.build_seconds[cl_file] = time.perf_counter() - start
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
        local = self._fitting(kern, local)
        padded = tuple(-(-g // l) * l for g, l in zip(global_size, local))
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

    def alloc(self, nbytes: int):
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

    def scratch(self, name: str, nbytes: int):
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

    def upload(self, array):
        flags = self.cl.mem_flags.READ_ONLY | self.cl.mem_flags.COPY_HOST_PTR
        with self.device_errors(f"cannot copy {array.nbytes} bytes to the device"):
            return self._made(self.cl.Buffer(self.context, flags, hostbuf=array))

    def wrap(self, array, writable: bool = False):
        """A device buffer standing for a numpy array: the caller's input (``writable`` False) or
        the output it will receive (``writable`` True, every value written by the kernels, so
        never uploaded). With ``zero_copy``, a buffer over the array's own memory
        (USE_HOST_PTR); else an upload, or a plain device buffer. Read the result back with
        ``read_back``, never by reading ``array`` directly, and keep every wrapped buffer until
        then: a zero-copy buffer keeps its host memory (the array, or a copy made here) only
        as long as it lives, and the queued kernels read that memory."""
        import numpy as np

        if not self.zero_copy:
            return self.alloc(array.nbytes) if writable else self.upload(np.ascontiguousarray(array))
        if not writable and not (array.flags.c_contiguous and array.flags.writeable):
            array = np.array(array, order="C")  # USE_HOST_PTR takes writable C-ordered memory (a copy)
        mf = self.cl.mem_flags
        access = mf.READ_WRITE if writable else mf.READ_ONLY
        with self.device_errors(f"cannot use {array.nbytes} bytes of host memory on the device"):
            return self.cl.Buffer(self.context, access | mf.USE_HOST_PTR, hostbuf=array)

    def read_back(self, buffer, array) -> None:
        """Make a ``wrap``-ped array hold the device's results: a map (and unmap) of its own
        memory with ``zero_copy``, else a copy from the device."""
        if not self.zero_copy:
            self.download(buffer, array)
            return
        with self.device_errors("running the filter"):
            mapped, _ = self.cl.enqueue_map_buffer(self.queue, buffer, self.cl.map_flags.READ, 0,
                                                   array.shape, array.dtype, is_blocking=True)
            mapped.base.release(self.queue)
            self.queue.finish()

    @property
    def memory(self) -> str:
        """The memory strategy in words (--explain)."""
        return "zero-copy host memory" if self.zero_copy else "copies to and from device memory"

    def download(self, buffer, array):
        with self.device_errors("running the filter"):
            self.cl.enqueue_copy(self.queue, array, buffer, is_blocking=True)
        return array

    def copy(self, dst, src, nbytes: int, dst_offset: int = 0, src_offset: int = 0):
        """Device-to-device copy of ``nbytes`` (enqueued only)."""
        return self.cl.enqueue_copy(self.queue, dst, src, byte_count=int(nbytes),
                                    src_offset=int(src_offset), dst_offset=int(dst_offset))

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
                limit = int(kern.get_work_group_info(self.cl.kernel_work_group_info.WORK_GROUP_SIZE,
                                                     self.device))
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


@functools.cache
def _runtime_for(platform_index: int, device_index: int) -> Runtime:
    for info, device in _platform_devices():
        if (info.platform_index, info.device_index) == (platform_index, device_index):
            return Runtime(info, device)
    raise DeviceError(f"{platform_index}:{device_index}", "device disappeared")  # pragma: no cover


PROBE_PROGRAM = "direct.cl"  # nearly every run needs it, so building it to probe a device costs nothing
# Built by the device thread after the probe, while the main thread still decodes: the program
# `auto` picks for the other common case (rank-1 kernels). Only when the probe came from PoCL's
# kernel cache (fast): a cold build takes seconds, and the process would wait for it at exit.
SPECULATIVE_PROGRAMS = ("separable.cl",)
SPECULATE_BELOW_S = 0.25

PROBE_SHAPE = (6, 20)  # rows, columns: direct's interior tile (2 x 16) fits once, the rest is its frame


def _first_launch(rt: Runtime) -> None:
    """One 3x3 correlation of a small float32 image, compared with numpy on the host: a device
    that builds but cannot run a kernel, or runs it wrongly, is a DeviceError, as one that
    cannot build. It runs direct's float kernels (interior and frame) at the local size a 3x3
    run on float planes takes: the work-group functions PoCL compiles for it serve those runs.
    About 5 ms once PoCL's kernel cache holds them (0.4 s on a cold cache)."""
    import numpy as np

    from clconv.algorithms import direct
    from clconv.kernels import Linear
    from clconv.params import BORDER_CODES, Geometry, Planes

    h, w = PROBE_SHAPE
    image = ((np.arange(h * w).reshape(h, w) * 7) % 13 - 6).astype(np.float32)
    weights = np.array([[1, 2, -3], [4, 5, 6], [-7, 8, 9]], np.float32)  # no symmetry hides a flip
    kernel = Linear("first launch", weights)
    window = Geometry().window((h, w), weights.shape)
    got = np.empty_like(image)
    try:
        src = Planes(rt.upload(image), 0, 1, (h, w))
        dst = Planes(rt.alloc(got.nbytes), 0, 1, window.out_shape)
        direct.correlate(rt, src, dst, kernel, window, BORDER_CODES["reflect"], 0.0)
        rt.download(dst.buffer, got)
    except (rt.cl.Error, DeviceError) as exc:  # raw (a kernel object, say) or already a DeviceError
        cause = exc.cause if isinstance(exc, DeviceError) else str(exc)
        first = (str(cause).strip().splitlines() or [type(exc).__name__])[0]
        raise DeviceError(rt.info.describe(), f"first launch failed: {first}") from exc
    padded = np.pad(image.astype(np.float64), 1, mode="symmetric")  # scipy's "reflect"
    expected = sum(weights[i, j] * padded[i:i + h, j:j + w] for i in range(3) for j in range(3))
    if not np.array_equal(got, expected):  # small integers: exact in float32, in any order
        raise DeviceError(rt.info.describe(), "first launch gave wrong results (a 3x3 correlation, checked "
                                              "against numpy)")


# In the command line (prefetch), pyopencl's CompilerWarning is filtered out for the whole
# process, so that builds need no catch_warnings (process-global state: the main thread's image
# warnings would wait for a build). Library use keeps the block, under WARNINGS_LOCK.
_compiler_warnings_filtered = False


@contextlib.contextmanager
def _quiet_build():
    if _compiler_warnings_filtered:
        yield
        return
    with WARNINGS_LOCK, warnings.catch_warnings():
        # pyopencl warns on non-empty build logs; clconv reports its own errors.
        warnings.simplefilter("ignore")
        yield


@functools.cache
def _usable_runtime(spec: str | None) -> Runtime:
    entry = _cache.entry if spec is None else None
    failure = None
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
    raise failure


def get_runtime(spec: str | None = None) -> Runtime:
    """The process-wide Runtime for ``spec`` (see requested_spec and candidates)."""
    if isinstance(spec, Runtime):
        return spec
    wanted = requested_spec(spec)
    pending = _join_prefetch()
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
    global _prefetch, _prefetch_thread, _compiler_warnings_filtered
    if _prefetch is not None or _prefetch_thread is not None:
        return
    wanted = requested_spec(spec)
    box: dict = {}
    ready = threading.Event()
    try:
        cl = _cl()  # imports hold the GIL: here, first; the thread then waits in OpenCL, without it
        warnings.filterwarnings("ignore", category=cl.CompilerWarning)
        _compiler_warnings_filtered = True
    except (ClconvError, AttributeError):
        pass

    def work():
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
    wanted, thread, box, ready = pending
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


# ------------------------------------------------------------------------------------------
# the device cache: which ICD library gave the default device, per machine and configuration

CACHE_SCHEMA = 1
CACHE_ENTRIES = 8  # one per machine sharing a home folder, configuration, clconv version ...
_RETRY_ENV = "_CLCONV_DEVICE_CACHE_RETRY"  # set for the rerun after a miss: the library that missed
# Everything in the environment that changes which platforms and devices there are, or their order.
_KEY_ENV = ("OCL_ICD_VENDORS", "OCL_ICD_FILENAMES", "OPENCL_VENDOR_PATH", "OCL_ICD_PLATFORM_SORT",
            "OCL_ICD_DEFAULT_PLATFORM", "OCL_ICD_ASSUME_ICD_EXTENSION", "CLCONV_DEVICE", "PYOPENCL_CTX",
            "LD_LIBRARY_PATH", "LD_PRELOAD", "RUSTICL_ENABLE", "CUDA_VISIBLE_DEVICES",
            "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ZE_AFFINITY_MASK")
_KEY_ENV_PREFIXES = ("POCL_", "OCLGRIND", "MESA_", "LP_", "GALLIUM_")
_DEV_PREFIXES = ("nvidia", "kfd", "dri", "accel", "mali", "kgsl", "dxg")


class _CacheMiss(Exception):
    """The remembered ICD did not give the remembered device: the full enumeration must decide."""


class _CacheState:
    def __init__(self):
        self.path: str | None = None  # None: the cache is not in use in this process
        self.key: dict | None = None
        self.entries: list = []
        self.entry: dict | None = None  # the entry being used: only its library is loaded
        self.changed_env = False  # OCL_ICD_VENDORS is ours until _restore_environment
        self.saved_env: str | None = None  # the user's OCL_ICD_VENDORS (None: unset)
        self.missed: str | None = None  # the library that missed in the run before this one


_cache = _CacheState()


def user_cache_dir() -> str:
    """``$XDG_CACHE_HOME/clconv`` (XDG_CACHE_HOME defaults to ~/.cache): clconv's per-user caches
    (the device cache here, the tuning measurements in clconv.tuning)."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "clconv")


def device_cache_path() -> str:
    """``$XDG_CACHE_HOME/clconv/device.json``."""
    return os.path.join(user_cache_dir(), "device.json")


def _entry_index(entry: dict) -> str:
    return f"{entry['platform_index']}:{entry['device_index']}"


def _stat(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _listing(folder: str, suffix: str = ""):
    """Names, sizes and times of a folder's files (and the folder's own time): any change to an
    ICD folder or to the driver files in it shows."""
    try:
        with os.scandir(folder) as it:
            files = sorted([e.name, *(_stat(e.path) or [])] for e in it if suffix in e.name)
    except OSError:
        return None
    return [_stat(folder), files]


def _pyopencl_folder() -> str | None:
    for entry in sys.path:
        folder = os.path.join(entry or ".", "pyopencl")
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            return os.path.abspath(folder)
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", "rb") as f:
            head = f.read(8192).decode("latin-1")
    except OSError:
        return ""
    for line in head.splitlines():
        if line.startswith(("model name", "Hardware", "cpu model", "uarch")):
            return line.split(":", 1)[-1].strip()
    return ""


def _environment_key() -> dict:
    """What the choice depends on: a different value anywhere means the full enumeration."""
    from clconv import __version__

    env = {k: os.environ.get(k) for k in _KEY_ENV}
    env.update({k: v for k, v in os.environ.items() if k.startswith(_KEY_ENV_PREFIXES)})
    vendors = os.environ.get("OCL_ICD_VENDORS") or os.environ.get("OPENCL_VENDOR_PATH") or "/etc/OpenCL/vendors"
    pyopencl = _pyopencl_folder()
    try:
        dev = sorted(n for n in os.listdir("/dev") if n.startswith(_DEV_PREFIXES))
        dev += sorted(os.listdir("/dev/dri")) if "dri" in dev else []
    except OSError:
        dev = None
    return {
        "clconv": __version__,
        "python": sys.prefix,
        "host": os.uname().nodename,
        "cpu": _cpu_model(),
        "env": env,
        "vendors": [vendors, _listing(vendors) if os.path.isdir(vendors) else _stat(vendors)],
        "pyopencl": [pyopencl, _listing(os.path.join(pyopencl, ".libs")) if pyopencl else None,
                     _listing(pyopencl, ".so")[1] if pyopencl and os.path.isdir(pyopencl) else None],
        "dev": dev,
    }


_ENTRY_FIELDS = {"key": dict, "library": str, "library_stat": list, "platform": str, "device": str,
                 "kind": str, "platform_index": int, "device_index": int, "restrict": bool}


def _read_cache(path: str) -> list:
    """The entries of the cache file; [] when there is none, or (with one warning) when it is
    corrupt. A file of another schema (another clconv) is passed over without a word."""
    import json

    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except FileNotFoundError:
        return []
    except OSError as exc:
        warn(f"device cache {path} cannot be read ({exc.strerror or exc}); ignoring it")
        return []
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if doc.get("schema") != CACHE_SCHEMA:
            return []
        entries = doc.get("entries")
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and all(isinstance(e.get(k), t) for k, t in _ENTRY_FIELDS.items())
                for e in entries):
            raise ValueError("unexpected contents")
    except (ValueError, UnicodeDecodeError) as exc:
        warn(f"device cache {path} is corrupt ({str(exc)[:80]}); ignoring it (it is rewritten, "
             "or delete it)")
        return []
    return entries


def _write_cache(path: str, entries: list) -> None:
    """Atomically (temporary file, then rename): concurrent runs leave one whole file. A cache
    that cannot be written is no error: the next run enumerates again."""
    import json
    import tempfile

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".device-", suffix=".json", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"schema": CACHE_SCHEMA, "entries": entries[:CACHE_ENTRIES]}, f, indent=1)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass


def enable_device_cache() -> bool:
    """Use (and keep up to date) the device cache in this process. Call before anything touches
    OpenCL, only where ``reexec`` is safe (nothing read or written yet). Returns whether a
    remembered ICD will be the only one loaded."""
    missed = os.environ.pop(_RETRY_ENV, None)
    if (_cache.path is not None or not sys.platform.startswith("linux") or "pyopencl._cl" in sys.modules
            or os.environ.get("CLCONV_DEVICE_CACHE", "1").strip() in ("0", "no", "off", "false")
            or requested_spec(None) is not None):
        return False
    import json

    _cache.path = device_cache_path()
    _cache.key = json.loads(json.dumps(_environment_key()))  # as it reads back from the file
    _cache.missed = missed
    _cache.entries = _read_cache(_cache.path)
    if missed is not None:
        return False
    for entry in _cache.entries:
        if entry["key"] == _cache.key and entry["restrict"] and _stat(entry["library"]) == entry["library_stat"]:
            _cache.entry = entry
            _cache.saved_env = os.environ.get("OCL_ICD_VENDORS")
            _cache.changed_env = True
            os.environ["OCL_ICD_VENDORS"] = entry["library"]
            return True
    return False


def _restore_environment() -> None:
    """The ICD loader has read OCL_ICD_VENDORS: give the user's value back (child processes)."""
    if not _cache.changed_env:
        return
    if _cache.saved_env is None:
        os.environ.pop("OCL_ICD_VENDORS", None)
    else:
        os.environ["OCL_ICD_VENDORS"] = _cache.saved_env
    _cache.changed_env = False


def _library_of(device) -> str | None:
    """The ICD library behind ``device``'s platform: every ICD platform handle starts with its
    dispatch table, whose functions live in the ICD library (dladdr names it)."""
    import ctypes

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    try:
        handle = device.platform.int_ptr
        dispatch = ctypes.c_void_p.from_address(handle).value
        function = ctypes.c_void_p.from_address(dispatch).value if dispatch else None
        if not function:
            return None
        info = DlInfo()
        if not ctypes.CDLL(None).dladdr(ctypes.c_void_p(function), ctypes.byref(info)) or not info.dli_fname:
            return None
        library = os.fsdecode(info.dli_fname)
    except (AttributeError, OSError, ValueError, TypeError):
        return None
    base = os.path.basename(library)
    if not os.path.isabs(library) or base.startswith("libOpenCL") or os.path.isdir(library):
        return None  # not an ICD of its own: nothing to restrict to
    return library


def _record(rt: Runtime) -> None:
    """Remember that the full enumeration chose ``rt`` (only in processes that enabled the cache)."""
    if _cache.path is None or _cache.key is None:
        return
    library = _library_of(rt.device)
    stat = _stat(library) if library else None
    if stat is None:
        return
    entry = {"key": _cache.key, "library": library, "library_stat": stat, "platform": rt.info.platform,
             "device": rt.info.name, "kind": rt.info.kind, "platform_index": rt.info.platform_index,
             "device_index": rt.info.device_index,
             # after a miss on this very library, loading it alone does not work here: do not try again
             "restrict": library != _cache.missed}
    kept = [e for e in _cache.entries if e["key"] != _cache.key]
    if any(e == entry for e in _cache.entries):
        return
    _write_cache(_cache.path, [entry] + kept)


def _fall_back(miss: _CacheMiss) -> None:
    """The remembered ICD missed: run this command again, from the start, with every ICD."""
    _restore_environment()
    os.environ[_RETRY_ENV] = _cache.entry["library"] if _cache.entry else ""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    argv = list(getattr(sys, "orig_argv", []) or [])
    try:
        if not argv:  # pragma: no cover - Python < 3.10
            raise OSError("no sys.orig_argv")
        os.execv(sys.executable, [sys.executable] + argv[1:])
    except OSError as exc:
        raise DeviceError(None, f"device cache: {miss}, and clconv could not start again ({exc}); "
                                "run the command again") from miss
