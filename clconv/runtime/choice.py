"""Which device: the request (--device, CLCONV_DEVICE, PYOPENCL_CTX), the default's ranking, the
choice over a device list, and CLCONV_CODE_PATH (the kind whose code paths a device takes).

Pure Python over DeviceInfo records: nothing here touches OpenCL (clconv.runtime.platforms lists
the devices), so every rule is testable with made-up devices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from clconv.errors import DeviceError


@dataclass(frozen=True)
class DeviceInfo:
    """What clconv knows of one OpenCL device without opening it: where it is, its kind and limits."""

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
        """The PoCL version of the platform, () when it is not PoCL."""
        return _pocl_version(f"{self.platform} {self.platform_version}")

    @property
    def index(self) -> str:
        """'P:D', pyopencl's form of the device's place (as --device takes it)."""
        return f"{self.platform_index}:{self.device_index}"

    def describe(self) -> str:
        """The device in one line, as messages and --explain name it."""
        return f"{self.index} {self.name} ({self.kind}, {self.platform})"


def requested_spec(spec: str | None) -> str | None:
    """--device, else CLCONV_DEVICE, else pyopencl's PYOPENCL_CTX, else None (the default choice)."""
    for value in (spec, os.environ.get("CLCONV_DEVICE"), os.environ.get("PYOPENCL_CTX")):
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _pocl_version(platform: str) -> tuple[int, ...]:
    """(3, 1) for 'Portable Computing Language ... PoCL 3.1+debian'; () when not PoCL."""
    import re

    match = re.search(r"PoCL (\d+)\.(\d+)", platform)
    return tuple(int(g) for g in match.groups()) if match else ()


SIMULATORS = ("oclgrind",)  # platforms that simulate a device: used only when named


def is_simulator(info: DeviceInfo) -> bool:
    """Whether the device is a simulator (Oclgrind), never chosen unless named."""
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


def _forced_kind() -> str | None:
    """The kind CLCONV_CODE_PATH names ('cpu' or 'gpu'), if any."""
    forced = os.environ.get(CODE_PATH_VARIABLE, "").strip().lower()
    return forced if forced in ("cpu", "gpu") else None


def _code_path(info: DeviceInfo) -> DeviceInfo:
    """``info`` as the code paths see it: CLCONV_CODE_PATH=gpu (or cpu) makes a device take the
    other kind's paths (build defines, FFT private sizes, auto's rules), so the GPU path runs,
    and is tested, on the PoCL CPU device. The device's own listing is unchanged."""
    forced = _forced_kind()
    if forced and forced != info.kind:
        return replace(info, kind=forced)
    return info
