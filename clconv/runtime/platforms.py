"""The OpenCL platforms and devices of this process, listed once: pyopencl is imported here, on
first use (``import clconv`` stays light), and through the device cache when it is in use."""

from __future__ import annotations

import functools

from clconv.errors import DeviceError
from clconv.runtime.choice import DeviceInfo
from clconv.runtime.device_cache import _cache, _CacheMiss, _entry_index


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
    if entry is not None and not any(
        info.index == _entry_index(entry) and info.name == entry["device"] for info, _ in found
    ):
        raise _CacheMiss(f"{entry['library']} did not give {entry['device']}")
    if not found:
        raise DeviceError(None, "no OpenCL device found (install pocl-binary-distribution or a GPU driver)")
    return tuple(found)


def list_devices() -> list[DeviceInfo]:
    """Every OpenCL device of every platform, as DeviceInfo (listed once per process)."""
    return [info for info, _ in _platform_devices()]
