"""The one place that owns OpenCL: device choice, context, queue, compiled programs.

Only this module imports pyopencl. ``get_runtime(spec)`` returns one Runtime per
device for the whole process; each program is built once per Runtime (PoCL's
own kernel cache then serves later processes) and each kernel fetched once.
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from dataclasses import dataclass

from clconv.errors import BuildError, DeviceError
from clconv.resources import program_source


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

    @property
    def pocl_version(self) -> tuple[int, ...]:
        return _pocl_version(self.platform)

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
    """(DeviceInfo, cl.Device) for every device of every platform, in platform order."""
    cl = _cl()
    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:
        raise DeviceError(None, "no OpenCL platform found (install pocl-binary-distribution or a GPU driver)") from exc
    found = []
    for p_index, platform in enumerate(platforms):
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
            )
            found.append((info, device))
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


def candidates(spec: str | None, devices: list[DeviceInfo]) -> list[DeviceInfo]:
    """Devices that fit ``spec``, best first. Only a kind ('cpu', 'gpu', default) has
    more than one: GPUs first for the default, then newer PoCL builds first."""
    key = (spec or "").lower()
    if key not in ("", "auto", "default", "cpu", "gpu"):
        return [select_device(spec, devices)]
    kinds = {"cpu": ("cpu",), "gpu": ("gpu",)}.get(key, ("gpu", "cpu", "other"))
    ranked = [d for kind in kinds for d in devices if d.kind == kind]
    ranked.sort(key=lambda d: (kinds.index(d.kind), tuple(-v for v in d.pocl_version)))
    if not ranked:
        select_device(spec, devices)  # raises the "no such device" error
    return ranked


def select_device(spec: str | None, devices: list[DeviceInfo]) -> DeviceInfo:
    """Pure choice over a device list: None -> a GPU if any, else a CPU; 'cpu'/'gpu';
    'P:D' or 'P' (pyopencl's index form); else a case-insensitive substring of the
    device or platform name."""
    def first(kind):
        return next((d for d in devices if d.kind == kind), None)

    def unknown(why):
        listing = "; ".join(d.describe() for d in devices) or "none"
        return DeviceError(f"--device {spec}", f"{why} (available: {listing})")

    if spec is None or spec.lower() in ("", "auto", "default"):
        return first("gpu") or first("cpu") or devices[0]
    key = spec.lower()
    if key in ("cpu", "gpu"):
        chosen = first(key)
        if chosen is None:
            raise unknown(f"no {key.upper()} device")
        return chosen
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


class Runtime:
    """Context, profiling queue and compiled programs of one device."""

    def __init__(self, info: DeviceInfo, device):
        cl = _cl()
        self.cl = cl
        self.info = info
        self.device = device
        try:
            self.context = cl.Context([device])
            self.queue = cl.CommandQueue(self.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
        except cl.Error as exc:
            raise DeviceError(info.describe(), f"cannot open the device ({exc})") from exc
        self.builds = 0  # programs built by this runtime: repeated calls must not rebuild
        # CPU-only code paths (e.g. unaligned word loads) are compiled in with -DCLCONV_CPU.
        self.build_options = ["-DCLCONV_CPU=1"] if info.kind == "cpu" else []
        self._programs: dict[str, object] = {}
        self._recorders: list[list] = []
        self._scratch: dict[str, tuple] = {}
        self.max_alloc = info.max_alloc  # the largest single buffer; bigger images go in tiles
        self._kernels: dict[tuple[str, str], object] = {}

    def program(self, cl_file: str):
        prog = self._programs.get(cl_file)
        if prog is None:
            source = program_source(cl_file)
            try:
                with warnings.catch_warnings():
                    # pyopencl warns on non-empty build logs; clconv reports its own errors.
                    warnings.simplefilter("ignore")
                    prog = self.cl.Program(self.context, source).build(options=self.build_options)
            except self.cl.Error as exc:
                if "unknown target CPU" in str(exc):
                    raise DeviceError(self.info.describe(), UNUSABLE_CPU_HINT) from exc
                raise BuildError(f"cl/{cl_file}", f"OpenCL build failed:\n{exc}") from exc
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
        padded = tuple(-(-g // l) * l for g, l in zip(global_size, local))
        kern = self.kernel(cl_file, name)
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
            return self.cl.Buffer(self.context, self.cl.mem_flags.READ_WRITE, max(int(nbytes), 1))
        except self.cl.Error as exc:
            raise DeviceError(self.info.describe(), f"cannot allocate {nbytes} bytes ({exc})") from exc

    def scratch(self, name: str, nbytes: int):
        """A device buffer kept for reuse under ``name`` (grown when too small): intermediates
        that would otherwise be new memory, and page faults, on every call. Safe because the
        queue is in order; the largest size used stays allocated."""
        held = self._scratch.get(name)
        if held is None or held[0] < nbytes:
            held = (int(nbytes), self.alloc(nbytes))
            self._scratch[name] = held
        return held[1]

    def upload(self, array):
        flags = self.cl.mem_flags.READ_ONLY | self.cl.mem_flags.COPY_HOST_PTR
        return self.cl.Buffer(self.context, flags, hostbuf=array)

    def wrap(self, array, writable: bool = False):
        """A buffer over a C-contiguous numpy array's own memory (USE_HOST_PTR): no copy on CPU
        devices, and the driver moves the data where it must. Read the result back with
        ``read_back`` (a map), never by reading ``array`` directly."""
        mf = self.cl.mem_flags
        access = mf.READ_WRITE if writable else mf.READ_ONLY
        return self.cl.Buffer(self.context, access | mf.USE_HOST_PTR, hostbuf=array)

    def read_back(self, buffer, array) -> None:
        """Make a ``wrap``-ped array's memory hold the device's results (map, then unmap)."""
        mapped, _ = self.cl.enqueue_map_buffer(self.queue, buffer, self.cl.map_flags.READ, 0,
                                               array.shape, array.dtype, is_blocking=True)
        mapped.base.release(self.queue)
        self.queue.finish()

    def download(self, buffer, array):
        self.cl.enqueue_copy(self.queue, array, buffer, is_blocking=True)
        return array

    def copy(self, dst, src, nbytes: int, dst_offset: int = 0, src_offset: int = 0):
        """Device-to-device copy of ``nbytes`` (enqueued only)."""
        return self.cl.enqueue_copy(self.queue, dst, src, byte_count=int(nbytes),
                                    src_offset=int(src_offset), dst_offset=int(dst_offset))

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


@functools.cache
def _usable_runtime(spec: str | None) -> Runtime:
    failure = None
    for info in candidates(spec, list_devices()):
        rt = _runtime_for(info.platform_index, info.device_index)
        try:
            rt.program(PROBE_PROGRAM)
            return rt
        except DeviceError as exc:  # e.g. a PoCL whose LLVM does not know this CPU: try the next
            failure = failure or exc
    raise failure


def get_runtime(spec: str | None = None) -> Runtime:
    """The process-wide Runtime for ``spec`` (see requested_spec and candidates)."""
    if isinstance(spec, Runtime):
        return spec
    return _usable_runtime(requested_spec(spec))
