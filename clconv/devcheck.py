"""`clconv devices --check`: build every program on a device, self-test each algorithm against
scipy.ndimage (float64), and measure a 3x3 float32 filter.

Each device is checked in its own process (``python -m clconv.devcheck P:D``, one JSON line on
stdout), so a driver that crashes or hangs (a build that never finishes) fails its own line
after a timeout and the other devices are still checked.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

PROGRAMS = ("direct.cl", "separable.cl", "bank.cl", "im2col.cl", "gemm.cl", "pixels.cl")  # and fft's build
TIMEOUT_S = 300


def _self_test(rt, algorithm: str) -> str | None:
    """None when ``algorithm`` matches the oracle on small 8-bit RGB and float images, else why."""
    import numpy as np
    import scipy.ndimage as ndi

    import clconv
    from clconv.constants import max_value

    rng = np.random.default_rng(7)
    x = np.arange(7) - 3.0
    g = np.exp(-x * x / 4)
    weights = (np.outer(g, g) - 0.5 * np.outer(g**2, g)).astype(np.float32)  # rank 2, 7x7
    floats = rng.uniform(-1, 2, (37, 53)).astype(np.float32)
    rgb = rng.integers(0, 256, (29, 41, 3), dtype=np.uint8)
    out = clconv.convolve(floats, weights, device=rt, algorithm=algorithm)
    ref = ndi.correlate(floats.astype(np.float64), weights.astype(np.float64), mode="reflect")
    err = float(np.abs(out - ref).max())
    if not err <= 1e-4 * 3 * float(np.abs(weights).sum()):
        return f"float32 differs from the oracle by {err:.3g}"
    out8 = clconv.convolve(rgb, weights, device=rt, algorithm=algorithm)
    ref8 = np.clip(
        np.rint(ndi.correlate(rgb.astype(np.float64), weights[:, :, None].astype(np.float64), mode="reflect")),
        0,
        max_value(np.uint8),
    )
    err8 = int(np.abs(out8.astype(np.int64) - ref8).max())
    return None if err8 <= 1 else f"8-bit differs from the oracle by {err8}"


def check_device(index: str) -> dict:
    """Everything `--check` reports for the device at ``index`` ('P:D'), as a dict."""
    import numpy as np

    import clconv
    from clconv.algorithms import REGISTRY
    from clconv.errors import ClconvError
    from clconv.runtime import get_runtime, is_simulator

    found: dict = {"index": index, "ok": False}
    try:
        rt = get_runtime(index)
    except ClconvError as exc:
        found["error"] = str(exc)
        return found
    found["device"] = rt.info.describe()
    builds = {}
    try:
        from clconv.algorithms import fft

        for name in (*PROGRAMS, fft.program(rt)):  # the FFT's shape for this device
            start = time.perf_counter()
            rt.program(name)
            builds[name] = round(time.perf_counter() - start, 3)
    except ClconvError as exc:
        found["builds"] = builds
        found["error"] = f"{exc.cause.splitlines()[0]}"
        return found
    found["builds"] = builds
    found["build_s"] = round(sum(builds.values()), 2)
    tests = {}
    for name in REGISTRY:
        try:
            tests[name] = _self_test(rt, name) or "ok"
        except ClconvError as exc:
            tests[name] = str(exc.cause).splitlines()[0]
    found["tests"] = tests
    side = 256 if is_simulator(rt.info) else 2048
    image = np.random.default_rng(1).random((side, side), dtype=np.float32)
    out = np.empty_like(image)
    weights = np.random.default_rng(2).standard_normal((3, 3)).astype(np.float32)
    try:
        clconv.convolve(image, weights, device=rt, out=out)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            clconv.convolve(image, weights, device=rt, out=out)
            times.append(time.perf_counter() - start)
        found["mpix_s"] = round(side * side / statistics.median(times) / 1e6, 1)
        found["bench_size"] = side
    except ClconvError as exc:
        tests["3x3 throughput"] = str(exc.cause).splitlines()[0]
    found["ok"] = all(v == "ok" for v in tests.values())
    return found


def check_in_subprocess(index: str, timeout: float = TIMEOUT_S) -> dict:
    """check_device in a fresh process; a crash, a hang or garbage is that device's failure."""
    env = dict(os.environ)
    env.pop("CLCONV_DEVICE", None)  # the index names the device
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "clconv.devcheck", index],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {"index": index, "ok": False, "error": f"no answer within {timeout:.0f} s (a build or launch hangs)"}
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        how = f"exit code {proc.returncode}" if proc.returncode >= 0 else f"killed by signal {-proc.returncode}"
        return {"index": index, "ok": False, "error": f"the check process failed ({how})"}


def describe(found: dict) -> str:
    """One line for a device: pass/fail, build time, each algorithm, 3x3 throughput."""
    head = f"{found.get('device') or found['index']}: {'pass' if found['ok'] else 'FAIL'}"
    if "error" in found:
        return f"{head}: {found['error']}"
    tests = "  ".join(
        f"{name} {'ok' if result == 'ok' else 'FAILED (' + result + ')'}"
        for name, result in found.get("tests", {}).items()
    )
    speed = f"  3x3 float32 {found['bench_size']}²: {found['mpix_s']:.0f} Mpix/s" if "mpix_s" in found else ""
    return f"{head}  build {found.get('build_s', 0):.2f} s  {tests}{speed}"


def main(argv=None) -> int:
    """The child process: check the device ``argv[0]`` and print the result as one JSON line."""
    index = (argv or sys.argv[1:])[0]
    print(json.dumps(check_device(index)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
