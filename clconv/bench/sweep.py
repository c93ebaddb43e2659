"""The plain ``clconv bench`` sweep: sizes x dtypes x channels x kernels, every algorithm on every
device against the references, and the JSON document both the sweep and the targets preset return.

GFLOP/s = 2 * taps * pixels * channels / time; GB/s = (bytes of the input + bytes of the output) /
time, what an ideal algorithm reads and writes once; ``bw_pct`` is that as a percent of a copy
bandwidth measured once per memory: a device buffer-to-buffer copy for clconv rows, a numpy copy
for references. "End to end" (``median_ms``) is numpy in, numpy out: ``clconv.convolve`` and the
references that can write into an output array allocated once and reused (``out_reused``).
"Device-only" (``device_median_ms``) is the sum of the kernels' profiled times of the same calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clconv.bench.checks import make_image, max_error, oracle, tolerance
from clconv.bench.harness import Candidate, make_rows, measure
from clconv.bench.references import (
    as_candidates,
    device_bandwidth,
    host_bandwidth,
    reference_candidates,
    reference_libraries,
)
from clconv.bench.settings import Settings, size_text
from clconv.errors import OptionError

if TYPE_CHECKING:
    from clconv.runtime.device import Runtime


@dataclass
class DeviceRun:
    """One device of the run: its spec, Runtime, start-up time and copy bandwidth."""

    spec: str | None
    rt: Runtime
    startup_ms: float
    bandwidth_gb_s: float


def open_devices(specs: tuple, echo) -> list[DeviceRun]:
    """Runtime, start-up time (context + first program build) and copy bandwidth per device.
    With --device all, a device that cannot be used is reported and left out."""
    from clconv.errors import ClconvError
    from clconv.runtime import get_runtime

    runs, seen = [], set()
    for spec in specs:
        start = time.perf_counter()
        try:
            rt = get_runtime(spec)
        except ClconvError as exc:
            if len(specs) == 1:
                raise
            echo(f"note: device {spec} left out: {exc}")
            continue
        startup = (time.perf_counter() - start) * 1e3
        if id(rt) in seen:
            continue
        seen.add(id(rt))
        runs.append(DeviceRun(spec, rt, startup, device_bandwidth(rt)))
    if not runs:
        raise OptionError("--device", "no usable device")
    return runs


def bandwidths(devices: list[DeviceRun]) -> dict:
    """Copy GB/s by device description, and 'host' for numpy."""
    found = {d.rt.info.describe(): d.bandwidth_gb_s for d in devices}
    found["host"] = host_bandwidth()
    return found


def algorithms_for(kernel, algorithm: str) -> tuple[list[str], list[str]]:
    """(algorithms to time, notes about those left out) for 'all', 'auto' or one name."""
    from clconv.algorithms import REGISTRY

    names = list(REGISTRY) if algorithm == "all" else [algorithm]
    chosen, notes = [], []
    for name in names:
        why = None if name == "auto" else REGISTRY[name].refuses(kernel)
        if why:
            notes.append(f"{name} skipped for {kernel.spec}: {why}")
        else:
            chosen.append(name)
    return chosen, notes


def _clconv_candidates(
    devices: list[DeviceRun], image: np.ndarray, given, border: str, algorithms: list[str], check
) -> list[Candidate]:
    import clconv

    candidates = []
    for d in devices:
        for name in algorithms:
            out = np.empty_like(image)

            def call(rt=d.rt, name=name, out=out):
                return clconv.convolve(image, given, border=border, device=rt, algorithm=name, out=out)

            candidates.append(
                Candidate(f"{name}@{d.rt.info.index}", name, d.rt.info.describe(), call, check, d.rt, out_reused=True)
            )
    return candidates


def convolution_rows(
    devices: list[DeviceRun],
    image: np.ndarray,
    kernel,
    border: str,
    algorithms: list[str],
    repeat: int,
    bandwidth: dict,
    references=True,
    given=None,
) -> tuple[list, dict]:
    """Time ``algorithms`` on every device and the references on one image and kernel.
    ``references``: True (scipy, and OpenCV where comparable), False, or a list of Reference.
    ``given``: what ``clconv.convolve`` is handed as its kernel (default ``kernel``; e.g. the numpy
    array whose weights ``kernel`` holds, so that the API's own handling of arrays is measured).
    Returns (rows, {"candidates", "results"})."""
    expected = oracle(image, kernel, border)
    tol = tolerance(image, kernel.weights)
    check = lambda out: max_error(out, expected)  # noqa: E731
    given = kernel if given is None else given
    candidates = _clconv_candidates(devices, image, given, border, algorithms, check)
    if references is True:
        candidates += reference_candidates(image, kernel, border, check)
    elif references:
        candidates += as_candidates(references, check)
    results = measure(candidates, repeat, tol)
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    kh, kw = kernel.shape
    work = {
        "size": size_text((h, w)),
        "kernel": kernel.spec,
        "dtype": image.dtype.name,
        "channels": channels,
        "border": border,
        "pixels": h * w,
        "flops": 2.0 * kh * kw * h * w * channels,
        "bytes": 2.0 * image.nbytes,
        "tolerance": tol,
        "kernel_shape": [kh, kw],
    }
    return make_rows(candidates, results, work, bandwidth), {"candidates": candidates, "results": results}


def parse_kernel(spec):
    """The linear kernel of ``spec``; OptionError for a gradient magnitude (bench times its parts)."""
    from clconv.kernels import Linear, parse_spec

    kernel = parse_spec(spec)
    if not isinstance(kernel, Linear):
        raise OptionError(
            "--kernel",
            f"bench measures linear kernels; {kernel.spec!r} is a gradient magnitude "
            "(measure its parts, e.g. sobel-x and sobel-y)",
        )
    return kernel


def run_bench(settings: Settings, echo) -> dict:
    """The sweep: sizes x dtypes x channels x kernels, every algorithm on every device, references."""
    kernels = [parse_kernel(k) for k in settings.kernels]
    devices = open_devices(settings.devices, echo)
    bandwidth = bandwidths(devices)
    rows, notes = [], []
    total = len(settings.sizes) * len(settings.dtypes) * len(settings.channels) * len(kernels)
    done = 0
    for size in settings.sizes:
        for dtype in settings.dtypes:
            for channels in settings.channels:
                image = make_image(size, channels, dtype)
                for kernel in kernels:
                    done += 1
                    names, skipped = algorithms_for(kernel, settings.algorithm)
                    notes += [n for n in skipped if n not in notes]
                    echo(f"[{done}/{total}] {size_text(size)} x{channels} {dtype} {kernel.spec} ...")
                    found, _ = convolution_rows(
                        devices, image, kernel, settings.border, names, settings.repeat, bandwidth
                    )
                    rows += found
                del image
    return document(settings, devices, bandwidth, rows, notes)


def document(settings: Settings, devices: list[DeviceRun], bandwidth: dict, rows: list, notes: list) -> dict:
    """The JSON document of a run (SPEC "bench": clconv, device, results)."""
    import clconv

    return {
        "clconv": clconv.__version__,
        "device": devices[0].rt.info.describe(),
        "devices": [
            {
                "device": d.rt.info.describe(),
                "index": d.rt.info.index,
                "startup_ms": d.startup_ms,
                "copy_gb_s": d.bandwidth_gb_s,
            }
            for d in devices
        ],
        "host": {"copy_gb_s": bandwidth["host"], "references": reference_libraries()},
        "settings": {
            "sizes": [size_text(s) for s in settings.sizes],
            "kernels": [str(k) for k in settings.kernels],
            "dtypes": list(settings.dtypes),
            "channels": list(settings.channels),
            "algorithm": settings.algorithm,
            "border": settings.border,
            "repeat": settings.repeat,
            "quick": settings.quick,
            "preset": settings.preset,
        },
        "notes": notes,
        "results": rows,
        "ok": all(r["ok"] for r in rows),
    }
