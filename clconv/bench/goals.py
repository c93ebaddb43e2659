"""``clconv bench --preset targets``: each workload of ``TARGETS`` in one run on the first device.

Convolution workloads time clconv's ``auto`` against the goal's one reference (cv2.filter2D or
cv2.sepFilter2D; no scipy: at 15x15 and more on 4096x4096 it would take most of the run), each
output checked against the oracle; kernels that a user would hand over as numpy arrays (the
Gaussians, LoG, DoG) are passed to ``clconv.convolve`` as float32 arrays. ``clconv apply`` and
``clconv batch`` are timed as whole processes (``clconv.bench.process``), peak memory in a fresh
process (``clconv.bench.peak_memory``). ``TargetSizes`` holds the workloads' sizes, so that tests
can run the preset small.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from clconv.bench.checks import make_image, max_error, oracle, tolerance
from clconv.bench.harness import Candidate, describe_failure, make_rows, measure
from clconv.bench.peak_memory import MIB, measure_peak_memory
from clconv.bench.process import measure_apply, measure_apply_vs, measure_batch_vs
from clconv.bench.references import NO_OPENCV, as_candidates, bank_references, goal_references, host_description, opencv
from clconv.bench.settings import Settings, size_text
from clconv.bench.sweep import DeviceRun, bandwidths, convolution_rows, document, open_devices
from clconv.bench.targets import TARGETS, TargetSizes, dog_array, evaluate_targets, gaussian_array, log_array


@dataclass
class TargetRun:
    """What the preset gathers as it goes: the rows, and each target's value and detail line."""

    device: DeviceRun
    bandwidth: dict
    repeat: int
    echo: Callable[[str], None]
    rows: list = field(default_factory=list)
    measured: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    process: dict = field(default_factory=dict)
    unmet: set = field(default_factory=set)  # keys whose goal failed a condition other than the figure


# --------------------------------------------------------------------------- detail lines


def speedup_against(rows: list, reference: str, algorithm: str = "auto"):
    """(end-to-end, device-only) speed-up of ``algorithm``'s row against ``reference``."""
    for row in rows:
        if not row["reference"] and row["algorithm"] == algorithm and row["ok"]:
            return row["speedup"].get(reference), row["device_speedup"].get(reference)
    return None, None


def row_named(rows, name):
    """The row of ``rows`` whose algorithm is ``name``, or None."""
    return next((r for r in rows if r["algorithm"] == name), None)


def detail(rows, reference, speedup, device_speedup) -> str:
    """One line: clconv and reference medians, and the device-only speed-up."""
    mine, ref = row_named(rows, "auto"), row_named(rows, reference)
    parts = []
    if mine and mine["median_ms"] is not None:
        parts.append(
            f"clconv {mine['median_ms']:.1f} ms e2e, {mine['device_median_ms'] or 0:.1f} ms kernels, "
            f"first call {mine['first_call_ms']:.0f} ms"
        )
    if ref and ref["median_ms"] is not None:
        parts.append(f"{reference} {ref['median_ms']:.1f} ms")
    if speedup is not None:
        parts.append(f"time ratio {1 / speedup:.2f}")
    if device_speedup is not None:
        parts.append(f"device-only speed-up x{device_speedup:.2f}")
    bad = [f"{r['algorithm']}: {r['error']}" for r in rows if not r["ok"]]
    return "; ".join(parts + bad)


def process_detail(found: dict, reference: str) -> str:
    """One line for a whole-process comparison: median seconds per side, the check, the notes."""
    if "error" in found or "skipped" in found:
        return found.get("error") or found["skipped"]
    parts = []
    if found.get(reference):
        parts.append(
            f"{found['command']} median {statistics.median(found['clconv']):.3f} s, {reference} "
            f"{statistics.median(found[reference]):.3f} s ({found['rounds']} interleaved rounds)"
        )
    if found.get("files"):
        parts.append(f"{found['files']} files of {found['size']}, {found['jobs']} processes each side")
    if reference not in found["errors"]:
        return found.get("left_out", {}).get(reference) or f"{reference} not measured"
    bad = [
        f"{tool} output off by {err:g}"
        for tool, err in found["errors"].items()
        if tool in ("clconv", reference) and not found["ok"][tool]
    ]
    if bad:
        parts.append("WRONG: " + ", ".join(bad))
    else:
        parts.append(
            "both outputs checked against the oracle"
            + (f", {found['differ_cv2']} samples differ" if reference == "cv2" else "")
        )
    return "; ".join(parts)


def _record_speedup(run: TargetRun, key: str, found: list, reference: str) -> None:
    run.rows += found
    speedup, device_speedup = speedup_against(found, reference)
    run.measured[key] = speedup
    run.details[key] = detail(found, reference, speedup, device_speedup)
    if row_named(found, reference) is None:
        run.details[key] += f"; {reference} not measured" + ("" if opencv() else f": {NO_OPENCV}")


# --------------------------------------------------------------------------- in-process workloads


def _convolution(run: TargetRun, key, label, image, kernel, reference, given=None, factors=None) -> None:
    run.echo(f"[targets] {label} ...")
    refs = goal_references(image, kernel, reference, factors)
    found, _ = convolution_rows(
        [run.device], image, kernel, "reflect", ["auto"], run.repeat, run.bandwidth, refs, given
    )
    _record_speedup(run, key, found, reference)


def _same_pixels(d: DeviceRun, image: np.ndarray, kernel) -> tuple[int | None, str]:
    """For the 8-bit row: (how many samples of clconv and cv2.filter2D differ, a note); both
    outputs were checked against the oracle already. (None, note) when not compared."""
    import clconv

    refs = goal_references(image, kernel, "cv2.filter2D")
    if not refs:
        return None, ""
    try:
        mine = clconv.convolve(image, kernel.spec, border="reflect", device=d.rt)
    except Exception as exc:  # noqa: BLE001 - the row above already says what failed
        return None, f"no pixel comparison: {describe_failure(exc)}"
    differ = int(np.count_nonzero(mine != refs[0].call()))
    return differ, f"{differ} of {mine.size} samples differ from cv2.filter2D"


def _sharpen_target(run: TargetRun, size) -> None:
    """The goal is the same pixels as cv2.filter2D, faster."""
    from clconv.kernels import parse_spec

    image, sharpen = make_image(size, 3, "uint8"), parse_spec("sharpen")
    _convolution(run, "sharpen_u8_rgb", f"sharpen uint8 RGB {size_text(size)}", image, sharpen, "cv2.filter2D")
    differ, same = _same_pixels(run.device, image, sharpen)
    if same:
        run.details["sharpen_u8_rgb"] += "; " + same
    if differ:
        run.unmet.add("sharpen_u8_rgb")


def _convolution_targets(run: TargetRun, sizes: TargetSizes, want) -> None:
    from clconv.kernels import Linear

    rng = np.random.default_rng(31)
    weights3, weights31 = rng.standard_normal((3, 3)), rng.standard_normal((31, 31))
    large, medium = sizes.large, sizes.medium
    if want("conv3x3_f32"):
        _convolution(
            run,
            "conv3x3_f32",
            f"3x3 float32 {size_text(large)}",
            make_image(large, 1, "float32"),
            Linear("random 3x3", weights3),
            "cv2.filter2D",
        )
    if want("sharpen_u8_rgb"):
        _sharpen_target(run, sizes.uhd)
    for n in (5, 15, 31):
        if want(f"gauss{n}_array"):
            weights, g = gaussian_array(n)
            _convolution(
                run,
                f"gauss{n}_array",
                f"{n}x{n} Gaussian float32 array on {size_text(large)}",
                make_image(large, 1, "float32"),
                Linear(f"gaussian {n}x{n} float32 array", weights),
                "cv2.sepFilter2D",
                given=weights,
                factors=(g, g),
            )
    for key, label, make_weights in (
        ("log15_rank2", "15x15 LoG sigma 2", log_array),
        ("dog15_rank2", "15x15 DoG sigma 1.5/3", dog_array),
    ):
        if want(key):
            weights = make_weights()
            _convolution(
                run,
                key,
                f"{label} float32 array on {size_text(large)}",
                make_image(large, 1, "float32"),
                Linear(f"{label} float32 array", weights),
                "cv2.filter2D",
                given=weights,
            )
    if want("dense31_f32"):
        _convolution(
            run,
            "dense31_f32",
            f"31x31 dense float32 {size_text(medium)}",
            make_image(medium, 1, "float32"),
            Linear("random 31x31", weights31),
            "cv2.filter2D",
        )


def _bank_rows(d: DeviceRun, repeat: int, bandwidth: dict, size=(2048, 2048)) -> list:
    """convolve_bank with 8 random 3x3 kernels vs 8 cv2.filter2D and 8 scipy calls (new outputs)."""
    import clconv
    from clconv.kernels import Linear

    rng = np.random.default_rng(8)
    image = make_image(size, 1, "float32", seed=3)
    bank = [Linear(f"random 3x3 #{i}", rng.standard_normal((3, 3))) for i in range(8)]
    expected = [oracle(image, k, "reflect") for k in bank]
    tol = max(tolerance(image, k.weights) for k in bank)

    def check(outs):
        return max(max_error(o, e) for o, e in zip(outs, expected)) if len(outs) == len(expected) else math.inf

    candidates = [
        Candidate(
            f"auto@{d.rt.info.index}",
            "auto",
            d.rt.info.describe(),
            lambda: clconv.convolve_bank(image, bank, border="reflect", device=d.rt),
            check,
            d.rt,
        )
    ]
    candidates += as_candidates(bank_references(image, bank), check)
    results = measure(candidates, repeat, tol)
    pixels = size[0] * size[1]
    work = {
        "size": size_text(size),
        "kernel": "bank 8 x random 3x3",
        "dtype": "float32",
        "channels": 1,
        "border": "reflect",
        "pixels": pixels,
        "flops": 2.0 * 9 * 8 * pixels,
        "bytes": 9.0 * image.nbytes,
        "tolerance": tol,
        "kernel_shape": [3, 3],
    }
    return make_rows(candidates, results, work, bandwidth)


def _sgemm_target(run: TargetRun, n: int) -> None:
    """clconv.matmul vs numpy.matmul at n^3, both returning new arrays; error vs a float64 product."""
    import clconv

    run.echo(f"[targets] SGEMM {n}^3 ...")
    d = run.device
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-4 * float(np.abs(expected).max())
    check = lambda out: max_error(out, expected)  # noqa: E731
    candidates = [
        Candidate(
            f"matmul@{d.rt.info.index}",
            "clconv.matmul",
            d.rt.info.describe(),
            lambda: clconv.matmul(a, b, device=d.rt),
            check,
            d.rt,
        ),
        Candidate("numpy.matmul", "numpy.matmul", host_description("scipy"), lambda: np.matmul(a, b), check),
    ]
    work = {
        "size": f"{n}x{n}x{n}",
        "kernel": "sgemm",
        "dtype": "float32",
        "channels": 1,
        "border": None,
        "pixels": None,
        "flops": 2.0 * n**3,
        "bytes": 3.0 * a.nbytes,
        "tolerance": tol,
        "kernel_shape": None,
    }
    found = make_rows(candidates, measure(candidates, run.repeat, tol), work, run.bandwidth)
    run.rows += found
    run.measured["sgemm"], _ = speedup_against(found, "numpy.matmul", algorithm="clconv.matmul")
    mine, ref = row_named(found, "clconv.matmul"), row_named(found, "numpy.matmul")
    if mine and ref and mine["gflop_s"] and ref["gflop_s"]:
        run.details["sgemm"] = (
            f"clconv.matmul {mine['gflop_s']:.1f} GFLOP/s ({mine['device_gflop_s'] or 0:.1f} "
            f"kernel only), numpy.matmul {ref['gflop_s']:.1f} GFLOP/s"
        )
    else:
        run.details["sgemm"] = "; ".join(f"{r['algorithm']}: {r['error']}" for r in found if r["error"])


# --------------------------------------------------------------------------- whole processes, memory


def _apply_targets(run: TargetRun, sizes: TargetSizes) -> None:
    run.echo(f"[targets] clconv apply vs Pillow + cv2 (and vips), {sizes.apply_rounds} rounds of whole processes ...")
    found = measure_apply_vs(run.device.spec, sizes.apply_rounds, sizes.png)
    run.process["apply"] = found
    run.notes += found.get("notes", [])
    run.measured["apply_vs_cv2"], run.measured["apply_vs_vips"] = found.get("vs_cv2"), found.get("vs_vips")
    run.details["apply_vs_cv2"] = process_detail(found, "cv2")
    run.details["apply_vs_vips"] = process_detail(found, "vips")
    if found.get("clconv") and found["ok"]["clconv"]:
        run.measured["apply_warm"] = statistics.median(found["clconv"])
        run.details["apply_warm"] = "runs " + ", ".join(f"{s:.2f}" for s in found["clconv"]) + " s"
    else:
        run.details["apply_warm"] = run.details["apply_vs_cv2"] if "error" in found else "clconv's output was wrong"


def _batch_target(run: TargetRun, sizes: TargetSizes) -> None:
    run.echo(
        f"[targets] clconv batch vs a Pool of Pillow + cv2, {sizes.batch_files} PNGs, {sizes.batch_rounds} rounds ..."
    )
    found = measure_batch_vs(run.device.spec, sizes.batch_rounds, sizes.batch_files, sizes.batch_png, sizes.jobs)
    run.process["batch"] = found
    run.measured["batch_vs_cv2"] = found.get("vs_cv2")
    run.details["batch_vs_cv2"] = process_detail(found, "cv2")


def _memory_target(run: TargetRun, key: str, spec: str, size) -> None:
    run.echo(f"[targets] peak memory, {spec}, in a subprocess ...")
    found = measure_peak_memory(run.device.spec, spec, size)
    run.measured[key] = found.get("over_mib")
    if "error" in found:
        run.details[key] = found["error"]
        return
    arrays = (found["input"] + found["output"]) / MIB
    run.details[key] = (
        f"peak RSS {found['peak'] / MIB:.0f} MiB, input + output {arrays:.0f} MiB; the process "
        f"before the image (Python, numpy, OpenCL device) {found['base'] / MIB:.0f} MiB, so "
        f"convolve itself adds {(found['peak'] - found['base']) / MIB - arrays:.0f} MiB"
    )


def _cold_apply_target(run: TargetRun) -> None:
    run.echo("[targets] clconv apply, cold caches, in a subprocess ...")
    found = measure_apply(run.device.spec, warm_runs=0, cold_runs=1)
    run.measured["apply_cold"] = found.get("cold_s")
    run.details["apply_cold"] = found.get("error") or "empty POCL_CACHE_DIR and XDG_CACHE_HOME"


# --------------------------------------------------------------------------- the preset


def run_targets(settings: Settings, echo, sizes: TargetSizes | None = None, only=None) -> dict:
    """Each workload of the targets table, in one run on the first device; ``sizes``: the
    workloads' sizes (default the goals'); ``only``: the target keys to measure (default all)."""
    sizes = sizes or TargetSizes()
    unknown = set(only or ()) - {t.key for t in TARGETS}
    if unknown:
        raise ValueError(f"unknown target keys: {', '.join(sorted(unknown))}")
    want = (lambda *keys: True) if only is None else (lambda *keys: any(k in only for k in keys))
    devices = open_devices(settings.devices[:1], echo)
    run = TargetRun(devices[0], bandwidths(devices), settings.repeat, echo)
    if sizes != TargetSizes():
        run.notes.append(
            "sizes differ from the goals': "
            + ", ".join(f"{k}={v}" for k, v in vars(sizes).items() if v != getattr(TargetSizes(), k))
        )
    _convolution_targets(run, sizes, want)
    if want("bank8_3x3"):
        echo(f"[targets] bank 8 x 3x3 on {size_text(sizes.medium)} ...")
        _record_speedup(
            run, "bank8_3x3", _bank_rows(run.device, run.repeat, run.bandwidth, sizes.medium), "8x cv2.filter2D"
        )
    if want("sgemm"):
        _sgemm_target(run, sizes.sgemm)
    if want("apply_vs_cv2", "apply_vs_vips", "apply_warm"):
        _apply_targets(run, sizes)
    if want("batch_vs_cv2"):
        _batch_target(run, sizes)
    for key, spec in (("memory_direct", "sharpen"), ("memory_separable", "gaussian:sigma=2")):
        if want(key):
            _memory_target(run, key, spec, sizes.memory)
    if want("apply_cold"):
        _cold_apply_target(run)
    return _targets_document(settings, devices, run, only)


def _targets_document(settings: Settings, devices: list, run: TargetRun, only) -> dict:
    doc = document(settings, devices, run.bandwidth, run.rows, run.notes)
    doc["process"] = run.process
    doc["ok"] = doc["ok"] and all("error" not in p and all(p.get("ok", {}).values()) for p in run.process.values())
    targets = TARGETS if only is None else tuple(t for t in TARGETS if t.key in only)
    doc["targets"] = evaluate_targets(run.measured, targets, run.unmet)
    for e in doc["targets"]:
        e["detail"] = run.details.get(e["key"], "")
    return doc
