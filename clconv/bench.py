"""``clconv bench``: the project's algorithms against numpy/scipy and OpenCV, on one or more devices.

How it measures (PERF-NOTES: the machine is shared and noisy, so trust ratios):

- Every candidate of a workload (each clconv algorithm on each device, and each reference) is
  called once first. That first call is timed apart (it builds programs the first time a kernel
  source is needed in the process) and its output is checked against a float64 oracle,
  ``scipy.ndimage.correlate`` on the float64 image with the same weights and border mode
  (integer outputs: the kernel's default mapping, rounded and clipped; tolerance 1; floats:
  ``1e-4 * value range * max(1, sum |w|)``). A candidate whose output is off is flagged
  (``ok`` False, ``error`` says why); a candidate that raises has no timings.
- Then ``repeat`` rounds; in each round every candidate runs once, in an order that rotates from
  round to round. Medians and minimums are over rounds; a speed-up is the median over rounds of
  (reference time / clconv time) in the same round. The last round's outputs are checked again.
- "End to end" (``median_ms``) is numpy in, numpy out. ``clconv.convolve`` and the references
  that can (``cv2.filter2D``/``sepFilter2D`` ``dst=``, ``scipy.ndimage.correlate`` ``output=``)
  write into an output array allocated once and reused (``out_reused``);
  ``clconv.convolve_bank`` and ``clconv.matmul`` have no ``out=`` and return new arrays.
- "Device-only" (``device_median_ms``) is the sum of the kernels' profiled execution times of the
  same calls (``Runtime.recording``), without transfers, maps and host work.
- GFLOP/s = 2 * taps * pixels * channels / time; GB/s = (bytes of the input + bytes of the
  output) / time, what an ideal algorithm reads and writes once; ``bw_pct`` is that as a percent
  of a copy bandwidth measured once per memory: a device buffer-to-buffer copy for clconv rows,
  a numpy copy for references.

``--preset targets`` (``run_targets``) measures the goals of ``TARGETS`` in one run: each
convolution workload times clconv's ``auto`` against the goal's one reference (cv2.filter2D or
cv2.sepFilter2D), checked against the oracle as above; kernels that a user would hand over as numpy
arrays (the Gaussians, LoG, DoG) are passed to ``clconv.convolve`` as float32 arrays. ``clconv
apply`` and ``clconv batch`` are timed as whole processes against a Pillow + OpenCV script doing the
same work (and ``vips conv`` when installed): ``clconv.bench_process``. ``TargetSizes`` holds the
workloads' sizes, so that tests can run the preset small.

This module imports no click; scipy, cv2 and matplotlib are imported inside functions. The CLI
calls ``run_cli(options, echo)``; ``run(options, echo)`` returns the JSON document.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from clconv.atomic import write_atomically
from clconv.errors import OptionError

DTYPES = ("uint8", "uint16", "float32")
MAX_VALUE = {"uint8": 255.0, "uint16": 65535.0}
CV2_BORDERS = {"reflect": "BORDER_REFLECT", "mirror": "BORDER_REFLECT_101",
               "nearest": "BORDER_REPLICATE", "constant": "BORDER_CONSTANT"}  # cv2 has no wrap
PRESETS = ("targets",)
MIB = 1 << 20

# What `clconv bench` measures when an option is not given; --quick: under a minute on 2 cores.
DEFAULT = {"sizes": ((2048, 2048),), "kernels": ("gaussian:size=3", "gaussian:size=7", "gaussian:size=15"),
           "dtypes": ("float32", "uint8"), "repeat": 5}
QUICK = {"sizes": ((512, 512), (1024, 1024)), "kernels": ("gaussian:size=3", "gaussian:size=7"),
         "dtypes": ("float32", "uint8"), "repeat": 3}
BANDWIDTH_BYTES = 64 * MIB


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Settings:
    """The validated options of one bench run."""

    sizes: tuple = DEFAULT["sizes"]          # ((h, w), ...)
    kernels: tuple = DEFAULT["kernels"]      # spec strings (or parsed kernels)
    dtypes: tuple = DEFAULT["dtypes"]
    channels: tuple = (1,)
    algorithm: str = "all"                   # 'all', 'auto' or a REGISTRY name
    devices: tuple = (None,)                 # device specs; None = clconv's default device
    repeat: int = DEFAULT["repeat"]
    quick: bool = False
    preset: str | None = None
    json: str | None = None
    plot: str | None = None
    border: str = "reflect"


def parse_size(text) -> tuple[int, int]:
    """'WxH' (as in 3840x2160) or 'N' (square) -> (height, width); a (h, w) pair passes through."""
    if isinstance(text, (tuple, list)):
        if len(text) != 2:
            raise OptionError("--size", f"expected (height, width), got {text!r}")
        h, w = text
    else:
        parts = str(text).lower().replace(" ", "").split("x")
        if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
            raise OptionError("--size", f"expected WxH such as 4096x4096, got {text!r}")
        w, h = (int(parts[0]), int(parts[-1]))
    h, w = int(h), int(w)
    if h < 1 or w < 1:
        raise OptionError("--size", f"sides must be at least 1, got {w}x{h}")
    return h, w


def _listed(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (str, int)):
        return (value,)
    return tuple(value)


def settings_from(options: dict) -> Settings:
    """Validate the CLI's option dict (see ``run_cli``) into Settings; OptionError on bad values."""
    from clconv.algorithms import check_name

    quick = bool(options.get("quick"))
    base = QUICK if quick else DEFAULT
    sizes = tuple(parse_size(s) for s in _listed(options.get("sizes"))) or base["sizes"]
    kernels = _listed(options.get("kernels")) or base["kernels"]
    dtypes = tuple(str(d).lower() for d in _listed(options.get("dtypes"))) or base["dtypes"]
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise OptionError("--dtype", f"unsupported dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    channels = tuple(_listed(options.get("channels"))) or (1,)
    for c in channels:
        if not isinstance(c, (int, np.integer)) or isinstance(c, bool) or not 1 <= c <= 64:
            raise OptionError("--channels", f"expected a whole number of channels from 1 to 64, got {c!r}")
    algorithm = str(options.get("algorithm") or "all").lower()
    if algorithm != "all":
        algorithm = check_name(algorithm)
    repeat = options.get("repeat")
    repeat = base["repeat"] if repeat is None else repeat
    if not isinstance(repeat, (int, np.integer)) or isinstance(repeat, bool) or repeat < 1:
        raise OptionError("--repeat", f"expected a whole number of rounds >= 1, got {repeat!r}")
    preset = options.get("preset")
    if preset is not None and preset not in PRESETS:
        raise OptionError("--preset", f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    from clconv.params import normalize_border

    return Settings(sizes=sizes, kernels=tuple(kernels), dtypes=dtypes, channels=tuple(int(c) for c in channels),
                    algorithm=algorithm, devices=_device_specs(options.get("devices")), repeat=int(repeat),
                    quick=quick, preset=preset, json=options.get("json") or None,
                    plot=options.get("plot") or None, border=normalize_border(options.get("border") or "reflect"))


def _device_specs(value) -> tuple:
    specs = tuple(str(v).strip() for v in _listed(value) if v is not None and str(v).strip())
    if not specs:
        return (None,)
    if any(s.lower() == "all" for s in specs):
        from clconv.runtime import list_devices

        return tuple(d.index for d in list_devices())
    return specs


# --------------------------------------------------------------------------- images, oracle, checks


def make_image(size: tuple[int, int], channels: int, dtype: str, seed: int = 0) -> np.ndarray:
    """A reproducible random image: HxW for one channel, else HxWxC; floats in [0, 1)."""
    rng = np.random.default_rng(seed)
    shape = tuple(size) if channels == 1 else (*size, channels)
    if dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, int(MAX_VALUE[dtype]) + 1, size=shape, dtype=np.dtype(dtype))


def _weights_for(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return weights if image.ndim == 2 else weights[:, :, None]


def integer_mapping(kernel, dtype: str) -> tuple[bool, float]:
    """(abs, bias in output units): the kernel's default mapping for an integer output."""
    return bool(kernel.abs), float(kernel.bias) * (MAX_VALUE[dtype] + 1)


def oracle(image: np.ndarray, kernel, border: str) -> np.ndarray:
    """The float64 result clconv must reproduce: scipy.ndimage.correlate on the float64 image;
    for integer images the default mapping, rounded half to even and clipped."""
    import scipy.ndimage as ndi

    ref = ndi.correlate(image.astype(np.float64), _weights_for(image, kernel.weights), mode=border, cval=0.0)
    dtype = image.dtype.name
    if dtype in MAX_VALUE:
        use_abs, bias = integer_mapping(kernel, dtype)
        if use_abs:
            np.abs(ref, out=ref)
        ref += bias
        np.clip(np.rint(ref, out=ref), 0.0, MAX_VALUE[dtype], out=ref)
    return ref


def tolerance(image: np.ndarray, weights: np.ndarray) -> float:
    """1 for integer outputs; 1e-4 * value range * max(1, sum |w|) for float outputs."""
    if image.dtype.name in MAX_VALUE:
        return 1.0
    span = float(image.max()) - float(image.min()) if image.size else 0.0
    return 1e-4 * (span or 1.0) * max(1.0, float(np.abs(weights).sum()))


def max_error(out, expected: np.ndarray) -> float:
    """Largest |out - expected|, in output units (NaN or a shape mismatch gives inf)."""
    out = np.asarray(out)
    if out.shape != expected.shape:
        return math.inf
    err = 0.0
    rows = zip(out.reshape(out.shape[0], -1), expected.reshape(expected.shape[0], -1))
    for a, b in rows:  # row by row: no image-sized float64 temporary
        e = float(np.max(np.abs(a.astype(np.float64) - b)))
        if not e <= err:
            err = e if not math.isnan(e) else math.inf
    return err


# --------------------------------------------------------------------------- candidates and rounds


@dataclass
class Candidate:
    """One thing to time: a clconv call on a device (``rt`` set) or a reference (``rt`` None)."""

    key: str
    name: str
    device: str
    call: Callable[[], object]
    check: Callable[[object], float]
    rt: object = None
    out_reused: bool = False

    @property
    def reference(self) -> bool:
        return self.rt is None


@dataclass
class Measured:
    first_s: float | None = None
    max_error: float | None = None
    error: str | None = None
    timed: bool = False
    wall: list = field(default_factory=list)     # seconds per round (None where it did not run)
    device: list = field(default_factory=list)   # kernel seconds per round (clconv only)


def _timed_call(c: Candidate):
    if c.rt is None:
        start = time.perf_counter()
        out = c.call()
        return time.perf_counter() - start, None, out
    with c.rt.recording() as events:
        start = time.perf_counter()
        out = c.call()
        c.rt.queue.finish()
        seconds = time.perf_counter() - start
    return seconds, c.rt.device_seconds(events), out


def _describe_failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _record_check(m: Measured, c: Candidate, out, tol: float) -> None:
    err = float(c.check(out))
    m.max_error = err if m.max_error is None else max(m.max_error, err)
    if not err <= tol and m.error is None:
        m.error = f"wrong output: max error {err:.3g} above the tolerance {tol:.3g}"


def measure(candidates: list, repeat: int, tol: float) -> dict:
    """First call (timed apart, output checked), then ``repeat`` interleaved rounds."""
    results = {c.key: Measured() for c in candidates}
    live = []
    for c in candidates:
        m = results[c.key]
        try:
            m.first_s, _, out = _timed_call(c)
            _record_check(m, c, out, tol)
        except Exception as exc:  # noqa: BLE001 - a failing candidate becomes a flagged row
            m.error = _describe_failure(exc)
            continue
        del out
        m.timed = True
        live.append(c)
    for r in range(repeat):
        order = live[r % len(live):] + live[: r % len(live)] if live else []
        for c in order:
            m = results[c.key]
            if not m.timed:
                m.wall.append(None)
                m.device.append(None)
                continue
            try:
                seconds, device_s, out = _timed_call(c)
                m.wall.append(seconds)
                m.device.append(device_s)
                if r == repeat - 1:
                    _record_check(m, c, out, tol)
                del out
            except Exception as exc:  # noqa: BLE001
                m.error, m.timed = _describe_failure(exc), False
                m.wall.append(None)
                m.device.append(None)
    return results


def _median_ratio(numer: list, denom: list) -> float | None:
    pairs = [a / b for a, b in zip(numer, denom) if a is not None and b]
    return statistics.median(pairs) if pairs else None


def _per_s(amount, seconds, unit=1e9):
    return amount / seconds / unit if amount is not None and seconds else None


def make_rows(candidates: list, results: dict, work: dict, bandwidth: dict) -> list[dict]:
    """One JSON row per candidate. ``work``: size, kernel, dtype, channels, border, pixels, flops,
    bytes, kernel_shape. ``bandwidth``: GB/s by device description, and 'host'."""
    refs = [c for c in candidates if c.reference and results[c.key].timed]
    rows = []
    for c in candidates:
        m = results[c.key]
        wall = [s for s in m.wall if s is not None]
        dev = [s for s in m.device if s is not None]
        med = statistics.median(wall) if wall else None
        dmed = statistics.median(dev) if dev else None
        peak = bandwidth.get("host" if c.reference else c.device)
        row = {
            "algorithm": c.name, "device": c.device, "reference": c.reference,
            "size": work["size"], "kernel": work["kernel"], "dtype": work["dtype"],
            "channels": work["channels"], "border": work["border"], "kernel_shape": work.get("kernel_shape"),
            "median_ms": _ms(med), "min_ms": _ms(min(wall) if wall else None),
            "mpix_s": _per_s(work.get("pixels"), med, 1e6), "gflop_s": _per_s(work["flops"], med),
            "gb_s": _per_s(work["bytes"], med), "bw_pct": None,
            "device_median_ms": _ms(dmed), "device_min_ms": _ms(min(dev) if dev else None),
            "device_mpix_s": _per_s(work.get("pixels"), dmed, 1e6), "device_gflop_s": _per_s(work["flops"], dmed),
            "device_gb_s": _per_s(work["bytes"], dmed), "device_bw_pct": None,
            "first_call_ms": _ms(m.first_s), "max_error": m.max_error, "tolerance": work["tolerance"],
            "ok": m.error is None, "error": m.error, "rounds": len(wall), "out_reused": c.out_reused,
            "speedup": {}, "device_speedup": {},
        }
        if peak:
            row["bw_pct"] = None if row["gb_s"] is None else 100.0 * row["gb_s"] / peak
            row["device_bw_pct"] = None if row["device_gb_s"] is None else 100.0 * row["device_gb_s"] / peak
        if not c.reference and m.timed:
            for ref in refs:
                row["speedup"][ref.name] = _median_ratio(results[ref.key].wall, m.wall)
                row["device_speedup"][ref.name] = _median_ratio(results[ref.key].wall, m.device)
        rows.append(row)
    return rows


def _ms(seconds):
    return None if seconds is None else seconds * 1e3


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Reference:
    name: str
    device: str
    call: Callable[[], object]
    out_reused: bool = True


def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def host_description(library: str) -> str:
    if library == "cv2":
        cv2 = _cv2()
        return f"host: OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads" if cv2 else "host: OpenCV"
    import scipy

    return f"host: numpy {np.__version__}, scipy {scipy.__version__}"


def _scipy_reference(image: np.ndarray, kernel, border: str) -> Reference:
    """scipy.ndimage.correlate into a reused output; integer images: float32 result, the default
    mapping, rounded and clipped with numpy."""
    import scipy.ndimage as ndi

    weights = _weights_for(image, kernel.weights)
    out = np.empty_like(image)
    dtype = image.dtype.name
    if dtype not in MAX_VALUE:
        call = lambda: ndi.correlate(image, weights, output=out, mode=border, cval=0.0)  # noqa: E731
        return Reference("scipy.ndimage.correlate", host_description("scipy"), call)
    use_abs, bias = integer_mapping(kernel, dtype)
    tmp = np.empty(image.shape, np.float32)

    def call():
        ndi.correlate(image, weights, output=tmp, mode=border, cval=0.0)
        if use_abs:
            np.abs(tmp, out=tmp)
        if bias:
            np.add(tmp, np.float32(bias), out=tmp)
        np.clip(np.rint(tmp, out=tmp), 0.0, MAX_VALUE[dtype], out=tmp)
        np.copyto(out, tmp, casting="unsafe")
        return out

    return Reference("scipy.ndimage.correlate", host_description("scipy"), call)


def _cv2_references(image: np.ndarray, kernel, border: str) -> list[Reference]:
    """cv2.filter2D, and cv2.sepFilter2D for rank-1 kernels, writing into reused outputs.
    None where OpenCV is missing, for wrap (cv2 has none), >4 channels, kernels larger than the
    image, or an integer mapping with abs and a bias, or abs on 16-bit (no single cv2 call)."""
    cv2 = _cv2()
    if cv2 is None or border not in CV2_BORDERS or (image.ndim == 3 and image.shape[2] > 4):
        return []
    if kernel.shape[0] > image.shape[0] or kernel.shape[1] > image.shape[1]:
        return []  # cv2 reflects only once: kernels larger than the image are not comparable
    border_type = getattr(cv2, CV2_BORDERS[border])
    dtype = image.dtype.name
    use_abs, bias = integer_mapping(kernel, dtype) if dtype in MAX_VALUE else (False, 0.0)
    if use_abs and (bias or dtype != "uint8"):
        return []
    host = host_description("cv2")
    k32 = np.ascontiguousarray(kernel.weights, dtype=np.float32)
    refs = []
    out = np.empty_like(image)
    if use_abs:  # 8-bit edge detectors: float result, then |v| saturated to 8 bits
        tmp = np.empty(image.shape, np.float32)

        def filter2d():
            cv2.filter2D(image, cv2.CV_32F, k32, dst=tmp, borderType=border_type)
            return cv2.convertScaleAbs(tmp, dst=out)
    else:
        def filter2d():
            return cv2.filter2D(image, -1, k32, dst=out, delta=bias, borderType=border_type)
    refs.append(Reference("cv2.filter2D", host, filter2d))
    factors = kernel.separable_factors()
    if factors is not None and not use_abs and min(kernel.shape) > 1:
        column, row = (np.ascontiguousarray(f, dtype=np.float32) for f in factors)
        sep_out = np.empty_like(image)
        refs.append(Reference("cv2.sepFilter2D", host, lambda: cv2.sepFilter2D(
            image, -1, row, column, dst=sep_out, delta=bias, borderType=border_type)))
    return refs


def reference_candidates(image: np.ndarray, kernel, border: str, check) -> list[Candidate]:
    refs = [_scipy_reference(image, kernel, border), *_cv2_references(image, kernel, border)]
    return [Candidate(r.name, r.name, r.device, r.call, check, None, r.out_reused) for r in refs]


# --------------------------------------------------------------------------- bandwidth, devices


def host_bandwidth(nbytes: int = BANDWIDTH_BYTES, reps: int = 5) -> float:
    """GB/s of a numpy copy between two preallocated arrays (read + write), best of ``reps``."""
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best / 1e9


def device_bandwidth(rt, nbytes: int = BANDWIDTH_BYTES, reps: int = 5) -> float:
    """GB/s of a device buffer-to-buffer copy (read + write), best of ``reps``, profiled."""
    src = rt.upload(np.ones(nbytes, np.uint8))  # written, so no page is read as zero-fill
    dst = rt.alloc(nbytes)
    rt.copy(dst, src, nbytes).wait()
    best = math.inf
    for _ in range(reps):
        event = rt.copy(dst, src, nbytes)
        event.wait()
        best = min(best, (event.profile.end - event.profile.start) * 1e-9)
    rt.queue.finish()
    return 2 * nbytes / best / 1e9


@dataclass
class DeviceRun:
    spec: str | None
    rt: object
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


# --------------------------------------------------------------------------- convolution workloads


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


def size_text(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


def convolution_rows(devices: list[DeviceRun], image: np.ndarray, kernel, border: str, algorithms: list[str],
                     repeat: int, bandwidth: dict, references=True, given=None) -> tuple[list, dict]:
    """Time ``algorithms`` on every device and the references on one image and kernel.
    ``references``: True (scipy, and OpenCV where comparable), False, or a list of Reference.
    ``given``: what ``clconv.convolve`` is handed as its kernel (default ``kernel``; e.g. the numpy
    array whose weights ``kernel`` holds, so that the API's own handling of arrays is measured).
    Returns (rows, {"candidates", "results"})."""
    import clconv

    expected = oracle(image, kernel, border)
    tol = tolerance(image, kernel.weights)
    check = lambda out: max_error(out, expected)  # noqa: E731
    given = kernel if given is None else given
    candidates = []
    for d in devices:
        for name in algorithms:
            out = np.empty_like(image)

            def call(rt=d.rt, name=name, out=out):
                return clconv.convolve(image, given, border, device=rt, algorithm=name, out=out)

            candidates.append(Candidate(f"{name}@{d.rt.info.index}", name, d.rt.info.describe(), call, check,
                                        d.rt, out_reused=True))
    if references is True:
        candidates += reference_candidates(image, kernel, border, check)
    elif references:
        candidates += [Candidate(r.name, r.name, r.device, r.call, check, None, r.out_reused) for r in references]
    results = measure(candidates, repeat, tol)
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    kh, kw = kernel.shape
    work = {"size": size_text((h, w)), "kernel": kernel.spec, "dtype": image.dtype.name, "channels": channels,
            "border": border, "pixels": h * w, "flops": 2.0 * kh * kw * h * w * channels,
            "bytes": 2.0 * image.nbytes, "tolerance": tol, "kernel_shape": [kh, kw]}
    return make_rows(candidates, results, work, bandwidth), {"candidates": candidates, "results": results}


def _parse_kernel(spec):
    from clconv.kernels import Linear, parse_spec

    kernel = parse_spec(spec)
    if not isinstance(kernel, Linear):
        raise OptionError("--kernel", f"bench measures linear kernels; {kernel.spec!r} is a gradient magnitude "
                                      "(measure its parts, e.g. sobel-x and sobel-y)")
    return kernel


def run_bench(settings: Settings, echo) -> dict:
    """The sweep: sizes x dtypes x channels x kernels, every algorithm on every device, references."""
    import clconv

    kernels = [_parse_kernel(k) for k in settings.kernels]
    devices = open_devices(settings.devices, echo)
    bandwidth = {d.rt.info.describe(): d.bandwidth_gb_s for d in devices}
    bandwidth["host"] = host_bandwidth()
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
                    found, _ = convolution_rows(devices, image, kernel, settings.border, names, settings.repeat,
                                                bandwidth)
                    rows += found
                del image
    return _document(settings, devices, bandwidth, rows, notes, clconv.__version__)


def _document(settings, devices, bandwidth, rows, notes, version) -> dict:
    return {
        "clconv": version,
        "device": devices[0].rt.info.describe(),
        "devices": [{"device": d.rt.info.describe(), "index": d.rt.info.index, "startup_ms": d.startup_ms,
                     "copy_gb_s": d.bandwidth_gb_s} for d in devices],
        "host": {"copy_gb_s": bandwidth["host"], "references": [host_description("scipy")]
                 + ([host_description("cv2")] if _cv2() else [])},
        "settings": {"sizes": [size_text(s) for s in settings.sizes], "kernels": [str(k) for k in settings.kernels],
                     "dtypes": list(settings.dtypes), "channels": list(settings.channels),
                     "algorithm": settings.algorithm, "border": settings.border, "repeat": settings.repeat,
                     "quick": settings.quick, "preset": settings.preset},
        "notes": notes,
        "results": rows,
        "ok": all(r["ok"] for r in rows),
    }


# --------------------------------------------------------------------------- the targets preset


@dataclass(frozen=True)
class Target:
    key: str
    workload: str
    figure: str      # what the value is
    op: str          # ">=" or "<=", or "info" (reported, no goal)
    threshold: float | None
    unit: str = ""


# Speed-ups are (reference time / clconv time), numpy in and out (or whole processes for apply and
# batch), medians of per-round ratios in the same run: >= 1 means faster. The goals of issue 10.
GAUSS_ARRAY = "speed-up, kernel given as np.outer(g, g).astype(float32), vs cv2.sepFilter2D with g"
RANK2_ARRAY = "speed-up, kernel given as a float32 array, vs cv2.filter2D with the same kernel"
TARGETS = (
    Target("conv3x3_f32", "3x3 float32 4096x4096 vs cv2.filter2D", "speed-up vs cv2.filter2D (reflect)", ">=",
           1.7, "x"),
    Target("sharpen_u8_rgb", "sharpen 8-bit RGB 3840x2160 vs cv2.filter2D, same pixels",
           "speed-up vs cv2.filter2D", ">=", 1.7, "x"),
    Target("gauss5_array", "5x5 Gaussian f32 array, 4096x4096 vs cv2.sepFilter2D", GAUSS_ARRAY, ">=", 1.2, "x"),
    Target("gauss15_array", "15x15 Gaussian f32 array, 4096x4096 vs cv2.sepFilter2D", GAUSS_ARRAY, ">=", 1.2, "x"),
    Target("gauss31_array", "31x31 Gaussian f32 array, 4096x4096 vs cv2.sepFilter2D", GAUSS_ARRAY, ">=", 1.2, "x"),
    Target("log15_rank2", "15x15 LoG sigma 2 (rank 2), 4096x4096 vs cv2.filter2D", RANK2_ARRAY, ">=", 3.0, "x"),
    Target("dog15_rank2", "15x15 DoG sigma 1.5-3 (rank 2), 4096x4096 vs cv2.filter2D", RANK2_ARRAY, ">=", 3.0, "x"),
    Target("dense31_f32", "31x31 dense random float32 2048x2048 vs cv2.filter2D", "speed-up vs cv2.filter2D", ">=",
           1.3, "x"),
    Target("bank8_3x3", "bank of 8 3x3 kernels, 2048x2048 vs 8 cv2.filter2D",
           "speed-up, convolve_bank vs 8 cv2.filter2D", ">=", 1.5, "x"),
    Target("sgemm", "SGEMM 2048^3 vs numpy.matmul", "speed-up, clconv.matmul vs numpy.matmul", ">=", 0.9, "x"),
    Target("apply_vs_cv2", "clconv apply -k sobel-x 1 MP PNG vs Pillow + cv2 one-liner",
           "speed-up, whole processes, vs python -c (Pillow, cv2.filter2D, abs, clip, PNG)", ">=", 1.0, "x"),
    Target("apply_vs_vips", "clconv apply -k sobel-x 1 MP PNG vs vips conv",
           "speed-up, whole processes, vs vips conv (integer precision)", ">=", 1.0, "x"),
    Target("batch_vs_cv2", "clconv batch --jobs 2, 20 PNGs 1024x768 vs Pillow+cv2 Pool(2)",
           "speed-up, whole processes, vs the one-liner's work over the files in a Pool of 2", ">=", 1.0, "x"),
    # Former goals, reported for information.
    Target("memory_direct", "peak memory, 4096x4096 RGB float32, 3x3 sharpen", "peak RSS - (input + output)",
           "info", None, "MiB"),
    Target("memory_separable", "peak memory, 4096x4096 RGB float32, gaussian:sigma=2",
           "peak RSS - (input + output)", "info", None, "MiB"),
    Target("apply_warm", "clconv apply -k sobel-x 1 MP PNG, caches warm", "seconds, median", "info", None, "s"),
    Target("apply_cold", "clconv apply -k sharpen 1 MP PNG, caches cold", "seconds", "info", None, "s"),
)


@dataclass(frozen=True)
class TargetSizes:
    """The sizes of the targets' workloads (the goals' by default; tests pass small ones)."""

    large: tuple = (4096, 4096)      # 3x3 float32, the Gaussians, LoG and DoG: (h, w)
    uhd: tuple = (2160, 3840)        # sharpen 8-bit RGB
    medium: tuple = (2048, 2048)     # dense 31x31, the bank of 8
    sgemm: int = 2048
    memory: tuple = (4096, 4096)     # peak memory, RGB float32
    png: tuple = (1024, 1024)        # clconv apply vs the one-liners (1 MP)
    batch_files: int = 20
    batch_png: tuple = (768, 1024)   # clconv batch vs the Pool
    jobs: int = 2
    apply_rounds: int = 5
    batch_rounds: int = 3


def evaluate_targets(measured: dict, targets=TARGETS, unmet=()) -> list[dict]:
    """Pure: each target with its measured value (None: not measured) and whether it is met
    (None: not measured, or a row for information). Keys in ``unmet`` failed a condition of their
    goal other than the figure (the same pixels as OpenCV): not met whatever the value."""
    evaluated = []
    for t in targets:
        value = measured.get(t.key)
        if isinstance(value, float) and math.isnan(value):
            value = None
        if value is None or t.op == "info":
            met = None
        elif t.key in unmet:
            met = False
        elif t.op == ">=":
            met = value >= t.threshold
        elif t.op == "<=":
            met = value <= t.threshold
        else:
            raise ValueError(f"unknown comparison {t.op!r}")
        evaluated.append({"key": t.key, "workload": t.workload, "figure": t.figure, "value": value, "op": t.op,
                          "threshold": t.threshold, "unit": t.unit, "met": met})
    return evaluated


def _fmt_value(value, unit) -> str:
    if value is None:
        return "not measured"
    if unit == "x":
        return f"x{value:.2f}"
    return f"{value:.2f} {unit}" if unit == "s" else f"{value:.1f} {unit}"


def format_targets(evaluated: list[dict], details: dict | None = None) -> list[str]:
    """The targets as a table: workload, measured value, goal, met (yes / NO / - when not
    measured or for information); each target's detail indented below it."""
    details = details or {}
    lines = [f"{'target':<62} {'measured':>13} {'goal':>12}  met"]
    for e in evaluated:
        goal = "info" if e["op"] == "info" else f"{e['op']} {_fmt_value(e['threshold'], e['unit'])}"
        met = {True: "yes", False: "NO", None: "-"}[e["met"]]
        lines.append(f"{e['workload']:<62} {_fmt_value(e['value'], e['unit']):>13} {goal:>12}  {met}")
        if details.get(e["key"]):
            lines.append(f"    {details[e['key']]}")
    return lines


def gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """Sampled Gaussian of ``size`` taps centred on the middle one, summing to 1 (float64)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-x * x / (2.0 * sigma * sigma))
    return g / g.sum()


def gaussian_array(size: int, sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(``np.outer(g, g).astype(float32)``, ``g`` as float32): a Gaussian handed over as a plain
    array (sigma defaults to (size - 1) / 6), and its 1D factor for cv2.sepFilter2D."""
    g = gaussian_1d(size, (size - 1) / 6.0 if sigma is None else sigma)
    return np.outer(g, g).astype(np.float32), g.astype(np.float32)


def log_array(size: int = 15, sigma: float = 2.0) -> np.ndarray:
    """Laplacian of Gaussian, d2G/dx2 + d2G/dy2 sampled on ``size`` x ``size`` taps, as float32:
    rank 2, the sum of two separable terms."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = gaussian_1d(size, sigma)
    d2 = g * (x * x / sigma ** 4 - 1.0 / sigma ** 2)
    return (np.outer(d2, g) + np.outer(g, d2)).astype(np.float32)


def dog_array(size: int = 15, sigma1: float = 1.5, sigma2: float = 3.0) -> np.ndarray:
    """Difference of Gaussians G(sigma1) - G(sigma2) on ``size`` x ``size`` taps, as float32: rank 2."""
    g1, g2 = gaussian_1d(size, sigma1), gaussian_1d(size, sigma2)
    return (np.outer(g1, g1) - np.outer(g2, g2)).astype(np.float32)


def _speedup(rows: list, reference: str, algorithm: str = "auto"):
    for row in rows:
        if not row["reference"] and row["algorithm"] == algorithm and row["ok"]:
            return row["speedup"].get(reference), row["device_speedup"].get(reference)
    return None, None


def _row(rows, name):
    return next((r for r in rows if r["algorithm"] == name), None)


def _detail(rows, reference, speedup, device_speedup) -> str:
    """One line: clconv and reference medians, and the device-only speed-up."""
    mine, ref = _row(rows, "auto"), _row(rows, reference)
    parts = []
    if mine and mine["median_ms"] is not None:
        parts.append(f"clconv {mine['median_ms']:.1f} ms e2e, {mine['device_median_ms'] or 0:.1f} ms kernels, "
                     f"first call {mine['first_call_ms']:.0f} ms")
    if ref and ref["median_ms"] is not None:
        parts.append(f"{reference} {ref['median_ms']:.1f} ms")
    if speedup is not None:
        parts.append(f"time ratio {1 / speedup:.2f}")
    if device_speedup is not None:
        parts.append(f"device-only speed-up x{device_speedup:.2f}")
    bad = [f"{r['algorithm']}: {r['error']}" for r in rows if not r["ok"]]
    return "; ".join(parts + bad)


def goal_references(image: np.ndarray, kernel, name: str, factors=None) -> list[Reference]:
    """The goal's one reference: ``cv2.sepFilter2D`` with the given 1D ``factors`` (column, row),
    or the named reference of ``_cv2_references`` (reflect border); [] without OpenCV."""
    cv2 = _cv2()
    if cv2 is None:
        return []
    if name == "cv2.sepFilter2D" and factors is not None:
        column, row = (np.ascontiguousarray(f, dtype=np.float32) for f in factors)
        out = np.empty_like(image)
        return [Reference(name, host_description("cv2"), lambda: cv2.sepFilter2D(
            image, -1, row, column, dst=out, borderType=cv2.BORDER_REFLECT))]
    return [r for r in _cv2_references(image, kernel, "reflect") if r.name == name]


def process_detail(found: dict, reference: str) -> str:
    """One line for a whole-process comparison: median seconds per side, the check, the notes."""
    if "error" in found or "skipped" in found:
        return found.get("error") or found["skipped"]
    parts = []
    if found.get(reference):
        parts.append(f"{found['command']} median {statistics.median(found['clconv']):.3f} s, {reference} "
                     f"{statistics.median(found[reference]):.3f} s ({found['rounds']} interleaved rounds)")
    if found.get("files"):
        parts.append(f"{found['files']} files of {found['size']}, {found['jobs']} processes each side")
    if reference not in found["errors"]:
        return found.get("left_out", {}).get(reference) or f"{reference} not measured"
    bad = [f"{tool} output off by {err:g}" for tool, err in found["errors"].items()
           if tool in ("clconv", reference) and not found["ok"][tool]]
    if bad:
        parts.append("WRONG: " + ", ".join(bad))
    else:
        parts.append("both outputs checked against the oracle"
                     + (f", {found['differ_cv2']} samples differ" if reference == "cv2" else ""))
    return "; ".join(parts)


def run_targets(settings: Settings, echo, sizes: TargetSizes | None = None, only=None) -> dict:
    """Each workload of the targets table, in one run on the first device; ``sizes``: the
    workloads' sizes (default the goals'); ``only``: the target keys to measure (default all).
    Convolution rows time clconv's ``auto`` and the goal's reference only (no scipy: at 15x15 and
    more on 4096x4096 it would take most of the run), each output checked against the oracle."""
    import clconv
    from clconv import bench_process
    from clconv.kernels import Linear, parse_spec

    sizes = sizes or TargetSizes()
    unknown = set(only or ()) - {t.key for t in TARGETS}
    if unknown:
        raise ValueError(f"unknown target keys: {', '.join(sorted(unknown))}")
    want = (lambda *keys: True) if only is None else (lambda *keys: any(k in only for k in keys))
    devices = open_devices(settings.devices[:1], echo)
    d = devices[0]
    bandwidth = {d.rt.info.describe(): d.bandwidth_gb_s, "host": host_bandwidth()}
    repeat = settings.repeat
    rows, measured, details, notes, process, unmet = [], {}, {}, [], {}, set()
    cv2_missing = "" if _cv2() else "OpenCV not installed (pip install opencv-python-headless)"
    if sizes != TargetSizes():
        notes.append("sizes differ from the goals': " + ", ".join(
            f"{k}={v}" for k, v in vars(sizes).items() if v != getattr(TargetSizes(), k)))

    def conv(key, label, image, kernel, reference, given=None, factors=None):
        echo(f"[targets] {label} ...")
        refs = goal_references(image, kernel, reference, factors)
        found, _ = convolution_rows([d], image, kernel, "reflect", ["auto"], repeat, bandwidth, refs, given)
        rows.extend(found)
        speedup, device_speedup = _speedup(found, reference)
        measured[key] = speedup
        details[key] = _detail(found, reference, speedup, device_speedup)
        if _row(found, reference) is None:
            details[key] += f"; {reference} not measured" + (f": {cv2_missing}" if cv2_missing else "")
        return found

    rng = np.random.default_rng(31)
    weights3, weights31 = rng.standard_normal((3, 3)), rng.standard_normal((31, 31))
    large, medium = sizes.large, sizes.medium
    if want("conv3x3_f32"):
        conv("conv3x3_f32", f"3x3 float32 {size_text(large)}", make_image(large, 1, "float32"),
             Linear("random 3x3", weights3), "cv2.filter2D")
    if want("sharpen_u8_rgb"):
        image = make_image(sizes.uhd, 3, "uint8")
        conv("sharpen_u8_rgb", f"sharpen uint8 RGB {size_text(sizes.uhd)}", image, parse_spec("sharpen"),
             "cv2.filter2D")
        differ, same = _same_pixels(d, image)
        if same:
            details["sharpen_u8_rgb"] += "; " + same
        if differ:  # the goal is the same pixels as cv2.filter2D, faster
            unmet.add("sharpen_u8_rgb")
        del image
    for n in (5, 15, 31):
        key = f"gauss{n}_array"
        if want(key):
            weights, g = gaussian_array(n)
            conv(key, f"{n}x{n} Gaussian float32 array on {size_text(large)}", make_image(large, 1, "float32"),
                 Linear(f"gaussian {n}x{n} float32 array", weights), "cv2.sepFilter2D", given=weights,
                 factors=(g, g))
    for key, label, weights in (("log15_rank2", "15x15 LoG sigma 2", log_array),
                                ("dog15_rank2", "15x15 DoG sigma 1.5/3", dog_array)):
        if want(key):
            weights = weights()
            conv(key, f"{label} float32 array on {size_text(large)}", make_image(large, 1, "float32"),
                 Linear(f"{label} float32 array", weights), "cv2.filter2D", given=weights)
    if want("dense31_f32"):
        conv("dense31_f32", f"31x31 dense float32 {size_text(medium)}", make_image(medium, 1, "float32"),
             Linear("random 31x31", weights31), "cv2.filter2D")

    if want("bank8_3x3"):
        echo(f"[targets] bank 8 x 3x3 on {size_text(medium)} ...")
        found = _bank_rows(d, repeat, bandwidth, medium)
        rows += found
        measured["bank8_3x3"], dev = _speedup(found, "8x cv2.filter2D")
        details["bank8_3x3"] = _detail(found, "8x cv2.filter2D", measured["bank8_3x3"], dev)
        if cv2_missing:
            details["bank8_3x3"] += f"; 8x cv2.filter2D not measured: {cv2_missing}"

    if want("sgemm"):
        n = sizes.sgemm
        echo(f"[targets] SGEMM {n}^3 ...")
        found = _sgemm_rows(d, repeat, bandwidth, n)
        rows += found
        measured["sgemm"], dev = _speedup(found, "numpy.matmul", algorithm="clconv.matmul")
        mine, ref = _row(found, "clconv.matmul"), _row(found, "numpy.matmul")
        if mine and ref and mine["gflop_s"] and ref["gflop_s"]:
            details["sgemm"] = (f"clconv.matmul {mine['gflop_s']:.1f} GFLOP/s ({mine['device_gflop_s'] or 0:.1f} "
                                f"kernel only), numpy.matmul {ref['gflop_s']:.1f} GFLOP/s")
        else:
            details["sgemm"] = "; ".join(f"{r['algorithm']}: {r['error']}" for r in found if r["error"])

    if want("apply_vs_cv2", "apply_vs_vips", "apply_warm"):
        echo(f"[targets] clconv apply vs Pillow + cv2 (and vips), {sizes.apply_rounds} rounds of whole processes ...")
        found = bench_process.measure_apply_vs(d.spec, sizes.apply_rounds, sizes.png)
        process["apply"] = found
        notes += found.get("notes", [])
        measured["apply_vs_cv2"], measured["apply_vs_vips"] = found.get("vs_cv2"), found.get("vs_vips")
        details["apply_vs_cv2"] = process_detail(found, "cv2")
        details["apply_vs_vips"] = process_detail(found, "vips")
        if found.get("clconv") and found["ok"]["clconv"]:
            measured["apply_warm"] = statistics.median(found["clconv"])
            details["apply_warm"] = "runs " + ", ".join(f"{s:.2f}" for s in found["clconv"]) + " s"
        else:
            details["apply_warm"] = details["apply_vs_cv2"] if "error" in found else "clconv's output was wrong"

    if want("batch_vs_cv2"):
        echo(f"[targets] clconv batch vs a Pool of Pillow + cv2, {sizes.batch_files} PNGs, "
             f"{sizes.batch_rounds} rounds ...")
        found = bench_process.measure_batch_vs(d.spec, sizes.batch_rounds, sizes.batch_files, sizes.batch_png,
                                               sizes.jobs)
        process["batch"] = found
        measured["batch_vs_cv2"] = found.get("vs_cv2")
        details["batch_vs_cv2"] = process_detail(found, "cv2")

    for key, spec in (("memory_direct", "sharpen"), ("memory_separable", "gaussian:sigma=2")):
        if not want(key):
            continue
        echo(f"[targets] peak memory, {spec}, in a subprocess ...")
        found = measure_peak_memory(d.spec, spec, sizes.memory)
        measured[key] = found.get("over_mib")
        if "error" in found:
            details[key] = found["error"]
            continue
        arrays = (found["input"] + found["output"]) / MIB
        details[key] = (f"peak RSS {found['peak'] / MIB:.0f} MiB, input + output {arrays:.0f} MiB; the process "
                        f"before the image (Python, numpy, OpenCL device) {found['base'] / MIB:.0f} MiB, so "
                        f"convolve itself adds {(found['peak'] - found['base']) / MIB - arrays:.0f} MiB")
    if want("apply_cold"):
        echo("[targets] clconv apply, cold caches, in a subprocess ...")
        found = measure_apply(d.spec, warm_runs=0, cold_runs=1)
        measured["apply_cold"] = found.get("cold_s")
        details["apply_cold"] = found.get("error") or "empty POCL_CACHE_DIR and XDG_CACHE_HOME"

    doc = _document(settings, devices, bandwidth, rows, notes, clconv.__version__)
    doc["process"] = process
    doc["ok"] = doc["ok"] and all("error" not in p and all(p.get("ok", {}).values()) for p in process.values())
    targets = TARGETS if only is None else tuple(t for t in TARGETS if t.key in only)
    doc["targets"] = evaluate_targets(measured, targets, unmet)
    for e in doc["targets"]:
        e["detail"] = details.get(e["key"], "")
    return doc


def _same_pixels(d: DeviceRun, image: np.ndarray) -> tuple[int | None, str]:
    """For the 8-bit row: (how many samples of clconv and cv2.filter2D differ, a note); both
    outputs were checked against the oracle already. (None, note) when not compared."""
    import clconv

    cv2 = _cv2()
    if cv2 is None:
        return None, ""
    try:
        mine = clconv.convolve(image, "sharpen", "reflect", device=d.rt)
    except Exception as exc:  # noqa: BLE001 - the row above already says what failed
        return None, f"no pixel comparison: {_describe_failure(exc)}"
    k = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    theirs = cv2.filter2D(image, -1, k, borderType=cv2.BORDER_REFLECT)
    differ = int(np.count_nonzero(mine != theirs))
    return differ, f"{differ} of {mine.size} samples differ from cv2.filter2D"


def _bank_rows(d: DeviceRun, repeat: int, bandwidth: dict, size=(2048, 2048)) -> list:
    """convolve_bank with 8 random 3x3 kernels vs 8 cv2.filter2D and 8 scipy calls (new outputs)."""
    import clconv
    from clconv.kernels import Linear

    import scipy.ndimage as ndi

    rng = np.random.default_rng(8)
    image = make_image(size, 1, "float32", seed=3)
    bank = [Linear(f"random 3x3 #{i}", rng.standard_normal((3, 3))) for i in range(8)]
    expected = [oracle(image, k, "reflect") for k in bank]
    tol = max(tolerance(image, k.weights) for k in bank)

    def check(outs):
        return max(max_error(o, e) for o, e in zip(outs, expected)) if len(outs) == len(expected) else math.inf

    candidates = [Candidate(f"auto@{d.rt.info.index}", "auto", d.rt.info.describe(),
                            lambda: clconv.convolve_bank(image, bank, "reflect", device=d.rt), check, d.rt)]
    candidates.append(Candidate("8x scipy.ndimage.correlate", "8x scipy.ndimage.correlate", host_description("scipy"),
                                lambda: [ndi.correlate(image, k.weights, mode="reflect") for k in bank], check))
    cv2 = _cv2()
    if cv2 is not None:
        k32 = [k.weights.astype(np.float32) for k in bank]
        candidates.append(Candidate("8x cv2.filter2D", "8x cv2.filter2D", host_description("cv2"),
                                    lambda: [cv2.filter2D(image, -1, k, borderType=cv2.BORDER_REFLECT) for k in k32],
                                    check))
    results = measure(candidates, repeat, tol)
    pixels = size[0] * size[1]
    work = {"size": size_text(size), "kernel": "bank 8 x random 3x3", "dtype": "float32", "channels": 1,
            "border": "reflect", "pixels": pixels, "flops": 2.0 * 9 * 8 * pixels,
            "bytes": 9.0 * image.nbytes, "tolerance": tol, "kernel_shape": [3, 3]}
    return make_rows(candidates, results, work, bandwidth)


def _sgemm_rows(d: DeviceRun, repeat: int, bandwidth: dict, n: int = 2048) -> list:
    """clconv.matmul vs numpy.matmul at n^3, both returning new arrays; error vs a float64 product."""
    import clconv

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-4 * float(np.abs(expected).max())
    check = lambda out: max_error(out, expected)  # noqa: E731
    candidates = [Candidate(f"matmul@{d.rt.info.index}", "clconv.matmul", d.rt.info.describe(),
                            lambda: clconv.matmul(a, b, device=d.rt), check, d.rt),
                  Candidate("numpy.matmul", "numpy.matmul", host_description("scipy"), lambda: np.matmul(a, b), check)]
    results = measure(candidates, repeat, tol)
    work = {"size": f"{n}x{n}x{n}", "kernel": "sgemm", "dtype": "float32", "channels": 1, "border": None,
            "pixels": None, "flops": 2.0 * n ** 3, "bytes": 3.0 * a.nbytes, "tolerance": tol, "kernel_shape": None}
    return make_rows(candidates, results, work, bandwidth)


_MEMORY_SCRIPT = r"""
import json, resource, sys
import numpy as np
import clconv
from clconv.runtime import get_runtime


def peak():
    # VmHWM: this process's own high-water mark. ru_maxrss is not: Linux carries the parent's
    # RSS at fork over into the child's ru_maxrss through exec.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


device = sys.argv[1] or None
spec, h, w, c = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
get_runtime(device)
base = peak()
image = np.random.default_rng(0).random((h, w, c), dtype=np.float32)
out = clconv.convolve(image, spec, device=device)
print(json.dumps({"peak": peak(), "base": base, "input": image.nbytes, "output": out.nbytes}))
"""


def measure_peak_memory(device: str | None, spec: str, size=(4096, 4096), channels: int = 3) -> dict:
    """In a fresh process: peak RSS of creating the image and one clconv.convolve, minus the
    bytes of its input and output (what convolve costs beyond the arrays themselves). ``base``
    is the peak before the image: Python, numpy and the opened OpenCL device."""
    proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, device or "", spec, str(size[0]), str(size[1]),
                           str(channels)], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]}
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    found["over_mib"] = (found["peak"] - found["input"] - found["output"]) / MIB
    return found


def _write_png(path: str, size=(1024, 1024)) -> None:
    from PIL import Image

    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(5).integers(0, 32, (h, w, 3))
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=-1) + noise
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)


def measure_apply(device: str | None, warm_runs: int = 5, cold_runs: int = 1, kernel: str = "sharpen") -> dict:
    """Wall time of ``clconv apply -k KERNEL in.png out.png`` (1024x1024 RGB) as a subprocess:
    warm (after one untimed run; median of ``warm_runs``; none when 0), and cold (empty
    POCL_CACHE_DIR and XDG_CACHE_HOME in a temporary folder, so PoCL and pyopencl compile
    everything again)."""
    from clconv.bench_process import clconv_command

    with tempfile.TemporaryDirectory(prefix="clconv-bench-") as tmp:
        src, dst = os.path.join(tmp, "in.png"), os.path.join(tmp, "out.png")
        _write_png(src)
        command = [*clconv_command(), "apply", "-k", kernel, "--force", src, dst]
        if device:
            command += ["--device", device]

        def timed(env):
            start = time.perf_counter()
            proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                                  stdin=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError((proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1])
            return seconds

        try:
            env = dict(os.environ)
            if warm_runs:
                timed(env)
            warm = [timed(env) for _ in range(warm_runs)]
            cold = []
            for i in range(cold_runs):
                caches = os.path.join(tmp, f"cold-{i}")
                cold.append(timed(dict(env, POCL_CACHE_DIR=os.path.join(caches, "pocl"),
                                       XDG_CACHE_HOME=os.path.join(caches, "xdg"))))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return {"error": str(exc)}
    return {"command": " ".join(command[:1] + command[1:4]) + " in.png out.png",
            "warm_s": statistics.median(warm) if warm else None, "warm_min_s": min(warm) if warm else None,
            "warm_runs": warm, "cold_s": statistics.median(cold) if cold else None,
            "cold_runs": cold}


# --------------------------------------------------------------------------- output


def _short(name: str) -> str:
    return (name.replace("scipy.ndimage.correlate", "scipy").replace("cv2.sepFilter2D", "cv2sep")
            .replace("cv2.filter2D", "cv2").replace("numpy.matmul", "numpy"))


def _num(value, spec: str) -> str:
    """``value`` formatted with ``spec`` (such as '8.2f'), or '-' padded to the same width."""
    if value is None:
        width = spec.split(".")[0]
        return "-".rjust(int(width)) if width.isdigit() else "-"
    return format(value, spec)


def format_table(rows: list[dict]) -> list[str]:
    """The terminal table: one line per row; e2e and device-only figures; speed-ups per reference."""
    head = (f"{'algorithm':<24} {'dev':<4} {'size':>9} {'ch':>2} {'kernel':<18} {'dtype':<7} {'median':>8} "
            f"{'min':>8} {'kernels':>8} {'Mpix/s':>8} {'GFLOP/s':>8} {'GB/s':>6} {'%bw':>4} {'1st ms':>7} "
            f"{'max err':>8} {'check':<5} speed-up (e2e; kernels-only)")
    lines = [head, "-" * len(head)]
    for r in rows:
        dev = "host" if r["reference"] else r["device"].split()[0]
        kernel = r["kernel"] if len(r["kernel"]) <= 18 else r["kernel"][:15] + "..."
        speed = ", ".join(f"{_short(k)} x{_num(v, '.2f')}; x{_num(r['device_speedup'].get(k), '.2f')}"
                          for k, v in r["speedup"].items())
        lines.append(
            f"{_short(r['algorithm']):<24} {dev:<4} {r['size']:>9} {r['channels']:>2} {kernel:<18} {r['dtype']:<7} "
            f"{_num(r['median_ms'], '8.2f')} {_num(r['min_ms'], '8.2f')} {_num(r['device_median_ms'], '8.2f')} "
            f"{_num(r['mpix_s'], '8.1f')} {_num(r['gflop_s'], '8.2f')} {_num(r['gb_s'], '6.2f')} "
            f"{_num(r['bw_pct'], '4.0f')} {_num(r['first_call_ms'], '7.0f')} "
            f"{_num(r['max_error'], '8.1e')} {'ok' if r['ok'] else 'FAIL':<5} {speed}")
        if not r["ok"]:
            lines.append(f"    {r['algorithm']} on {dev}: {r['error']}")
    return lines


def format_header(doc: dict) -> list[str]:
    s = doc["settings"]
    lines = [f"clconv {doc['clconv']} bench: medians of {s['repeat']} interleaved rounds; times in ms; "
             "median/min: end to end (numpy in, numpy out); kernels: device-only; 1st: first call "
             "(builds programs); %bw: of the copy bandwidth below"]
    for d in doc["devices"]:
        lines.append(f"device {d['device']}: start-up {d['startup_ms']:.0f} ms, buffer copy {d['copy_gb_s']:.1f} GB/s")
    lines.append(f"host: numpy copy {doc['host']['copy_gb_s']:.1f} GB/s; references: "
                 + "; ".join(doc["host"]["references"]))
    return lines


def write_json(doc: dict, path: str) -> None:
    write_atomically(path, lambda fo: _dump(doc, fo))


def _dump(doc, fileobj):
    fileobj.write((json.dumps(_finite(doc), indent=1) + "\n").encode("utf-8"))


def _finite(value):
    """NaN and infinities become None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def _check_output_folder(path: str, option: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OptionError(option, f"folder {folder} does not exist")


def plot_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plot(rows: list[dict], path: str) -> None:
    """Throughput (Mpix/s, end to end, log scale) by kernel, kernels ordered by size; one line per
    algorithm and reference, one panel per image size, dtype and channel count."""
    from matplotlib.figure import Figure

    groups: dict = {}
    for r in rows:
        if r["mpix_s"] is None or not r.get("kernel_shape"):
            continue
        panel = groups.setdefault((r["size"], r["dtype"], r["channels"]), {})
        label = r["algorithm"] if r["reference"] else f"clconv {r['algorithm']} ({r['device'].split()[0]})"
        panel.setdefault(label, {})[(r["kernel_shape"][0] * r["kernel_shape"][1], r["kernel"])] = r["mpix_s"]
    if not groups:
        raise OptionError("--plot", "no timed convolution rows to plot")
    columns = min(3, len(groups))
    lines = -(-len(groups) // columns)
    fig = Figure(figsize=(6.5 * columns + 2.5, 4.8 * lines), layout="constrained")
    axes = fig.subplots(lines, columns, squeeze=False).ravel()
    # One colour per series across every panel, so the single legend tells them apart.
    labels = sorted({label for series in groups.values() for label in series})
    palette = [f"C{i % 10}" for i in range(len(labels))]
    colour = dict(zip(labels, palette))
    for ax, ((size, dtype, channels), series) in zip(axes, sorted(groups.items())):
        kernels = sorted({k for points in series.values() for k in points})
        where = {k: i for i, k in enumerate(kernels)}
        for label, points in sorted(series.items()):
            keys = sorted(points)
            ax.plot([where[k] for k in keys], [points[k] for k in keys], marker="o", color=colour[label],
                    linestyle="-" if label.startswith("clconv") else "--", label=label)
        ax.set_xticks(range(len(kernels)), [k[1] if len(k[1]) <= 20 else k[1][:17] + "..." for k in kernels],
                      rotation=20, fontsize="small")
        ax.set_title(f"{size} x{channels} {dtype}")
        ax.set_xlabel("kernel (by number of taps)")
        ax.set_ylabel("Mpix/s, end to end")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    legend = {}
    for ax in axes[: len(groups)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="outside right upper", fontsize="small")
    write_atomically(path, lambda fo: fig.savefig(fo, format="png", dpi=100))


# --------------------------------------------------------------------------- entry points


def run(options: dict, echo) -> dict:
    """Validate ``options``, measure, print the table (and targets) through ``echo``, write
    --json/--plot; returns the JSON document."""
    settings = settings_from(options)
    for path, option in ((settings.json, "--json"), (settings.plot, "--plot")):
        if path:
            _check_output_folder(path, option)
    if settings.plot and not plot_available():
        raise OptionError("--plot", "needs matplotlib (pip install 'clconv[bench]')")
    doc = run_targets(settings, echo) if settings.preset == "targets" else run_bench(settings, echo)
    for line in format_header(doc) + format_table(doc["results"]) + [f"note: {n}" for n in doc["notes"]]:
        echo(line)
    if "targets" in doc:
        echo("")
        details = {e["key"]: e.get("detail") for e in doc["targets"]}
        for line in format_targets(doc["targets"], details):
            echo(line)
    if settings.json:
        write_json(doc, settings.json)
    if settings.plot:
        write_plot(doc["results"], settings.plot)
    if not doc["ok"]:
        echo("bench: some outputs were wrong or failed (rows marked FAIL)")
    return doc


def run_cli(options: dict, echo) -> int:
    """What ``clconv bench`` calls. ``options`` keys (all optional):

    sizes: list of (h, w) pairs (or 'WxH' strings); kernels: list of spec strings;
    dtypes: list of 'uint8' | 'uint16' | 'float32'; channels: int or list of ints;
    algorithm: 'all' (default) | 'auto' | a REGISTRY name; devices: list of specs, or 'all',
    or None (default device); repeat: int or None; quick: bool; preset: None | 'targets';
    json: path or None; plot: path or None; border: str (default 'reflect').

    Returns the exit code: 0, or 1 when any output was wrong or a candidate failed (the table and
    files are still written). Bad options raise OptionError (exit 2 through the CLI's boundary).
    """
    doc = run(options, echo)
    return 0 if doc["ok"] else 1
