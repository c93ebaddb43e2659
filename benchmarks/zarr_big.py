"""A big float32 image as zarr through ``clconv apply`` in bounded memory, checked against scipy.

Makes an NxN float32 zarr array (default 20000x20000, 1.6 GB, chunks 1024x1024: ragged last
chunks), filters it with a 15x15 Gaussian through ``clconv apply IN.zarr OUT.zarr`` in a
subprocess, and reports the subprocess's peak RSS (getrusage RUSAGE_CHILDREN), beside the same
apply on a 256x256 zarr (the device's and Python's own baseline). Then compares sampled 64x64
windows of the output (the image's corners, crossings of chunk edges, the ragged last chunk's
edge, random ones) with scipy.ndimage.correlate in float64 on the matching input windows,
border-extended by scipy's "reflect" rule (clconv's default). Deletes both arrays at the end
unless --keep.

    python benchmarks/zarr_big.py [--size 20000] [--chunk 1024] [--folder /tmp] [--via cli|module]

``--via module`` calls clconv.zarrio.apply_zarr in the subprocess instead of the command line
(for trees where apply does not yet route .zarr paths there).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

SIGMA, SIZE = 2.0, 15
KERNEL = f"gaussian:sigma={SIGMA:g},size={SIZE}"
WINDOW = 64
TOLERANCE = 1e-4  # SPEC: 1e-4 of the input's value range (here [0, 1]; the Gaussian's sum|w| is 1)


def make_input(path: str, size: int, chunk: int) -> None:
    """A smooth pattern plus noise in [0, 1], written one band of chunk rows at a time."""
    import zarr

    array = zarr.open_array(path, mode="w", shape=(size, size), chunks=(chunk, chunk), dtype=np.float32)
    rng = np.random.default_rng(0)
    x = np.arange(size, dtype=np.float32)
    for top in range(0, size, chunk):
        rows = np.arange(top, min(size, top + chunk), dtype=np.float32)[:, None]
        band = 0.5 + 0.25 * np.sin(x / 37.0) * np.cos(rows / 53.0) + 0.1 * rng.random((len(rows), size), np.float32)
        array[top:top + len(rows)] = np.clip(band, 0.0, 1.0)


def apply_command(via: str, source: str, target: str) -> list:
    if via == "cli":
        clconv = shutil.which("clconv") or os.path.join(os.path.dirname(sys.executable), "clconv")
        return [clconv, "apply", source, target, "-k", KERNEL, "--max-pixels", "0"]
    code = ("import sys; from clconv.files import FilterOptions; from clconv.zarrio import apply_zarr; "
            f"apply_zarr(sys.argv[1], sys.argv[2], FilterOptions(kernels=({KERNEL!r},), max_pixels=0))")
    return [sys.executable, "-c", code, source, target]


def run_apply(via: str, source: str, target: str) -> tuple[float, int]:
    """Seconds, and the peak RSS (bytes) of every child so far (getrusage: the largest child's)."""
    start = time.perf_counter()
    done = subprocess.run(apply_command(via, source, target), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"apply failed ({done.returncode}): {done.stderr.strip()}")
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux


def gaussian_2d() -> np.ndarray:
    """scipy.ndimage's Gaussian weights at this sigma over SIZE taps, written out independently."""
    x = np.arange(SIZE, dtype=np.float64) - SIZE // 2
    g = np.exp(-0.5 * x * x / (SIGMA * SIGMA))
    g /= g.sum()
    return np.outer(g, g)


def reflected(indices: np.ndarray, n: int) -> np.ndarray:
    """scipy's "reflect" (d c b a | a b c d | d c b a) for indices at most n outside."""
    indices = np.where(indices < 0, -indices - 1, indices)
    return np.where(indices >= n, 2 * n - 1 - indices, indices)


def windows(size: int, chunk: int, count: int = 8) -> list:
    """Top-left corners of the sampled windows: corners, chunk-edge crossings, random ones."""
    last = size - WINDOW
    edges = [chunk - WINDOW // 2, 3 * chunk - WINDOW // 2, (size // chunk) * chunk - WINDOW // 2]
    edges = [e for e in edges if 0 <= e <= last]
    picked = [(0, 0), (0, last), (last, 0), (last, last)] + [(e, e) for e in edges] + [(edges[0], 0), (0, edges[-1])]
    rng = np.random.default_rng(1)
    picked += [tuple(int(v) for v in rng.integers(0, last + 1, 2)) for _ in range(count)]
    return sorted(set(picked))


def check_windows(source: str, target: str, size: int, chunk: int) -> tuple[float, int]:
    """The largest |clconv - scipy| over the sampled windows, and how many windows."""
    import scipy.ndimage as ndi
    import zarr

    src, out = zarr.open_array(source, mode="r"), zarr.open_array(target, mode="r")
    weights, reach = gaussian_2d(), SIZE // 2
    worst = 0.0
    picked = windows(size, chunk)
    for top, left in picked:
        rows = reflected(np.arange(top - reach, top + WINDOW + reach), size)
        cols = reflected(np.arange(left - reach, left + WINDOW + reach), size)
        extended = np.asarray(src.oindex[rows, cols], np.float64)
        expected = ndi.correlate(extended, weights, mode="constant")[reach:-reach, reach:-reach]
        got = np.asarray(out[top:top + WINDOW, left:left + WINDOW], np.float64)
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst, len(picked)


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--folder", default=tempfile.gettempdir())
    parser.add_argument("--via", choices=("cli", "module"), default="cli")
    parser.add_argument("--keep", action="store_true", help="keep the arrays")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="clconv-zarr-big-", dir=args.folder)
    try:
        small_in, small_out = os.path.join(work, "small.zarr"), os.path.join(work, "small-out.zarr")
        make_input(small_in, 256, 64)
        _, baseline_rss = run_apply(args.via, small_in, small_out)
        source, target = os.path.join(work, "in.zarr"), os.path.join(work, "out.zarr")
        start = time.perf_counter()
        make_input(source, args.size, args.chunk)
        made = time.perf_counter() - start
        seconds, peak_rss = run_apply(args.via, source, target)
        worst, count = check_windows(source, target, args.size, args.chunk)
        pixels = args.size * args.size
        report = {
            "size": f"{args.size}x{args.size} float32 ({pixels * 4 / 1e9:.2f} GB)", "chunks": args.chunk,
            "kernel": KERNEL, "via": args.via, "input_on_disk_gb": round(folder_bytes(source) / 1e9, 2),
            "make_input_s": round(made, 1), "apply_s": round(seconds, 1), "mpix_s": round(pixels / seconds / 1e6, 1),
            "peak_rss_mib": round(peak_rss / 2**20), "baseline_rss_mib_256x256": round(baseline_rss / 2**20),
            "windows_checked": count, "max_abs_error": worst, "tolerance": TOLERANCE,
            "ok": bool(peak_rss < 1e9 and worst <= TOLERANCE),  # under 1 GB
        }
        print(json.dumps(report, indent=1))
    finally:
        if args.keep:
            print(f"kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
