"""The tiled OpenCL SGEMM (cl/gemm.cl) against numpy.matmul (OpenBLAS) at size^3.

    python benchmarks/gemm_bench.py [--size 2048] [--repeat 5] [--device cpu]

Three candidates, interleaved round by round, the order rotating every round (clconv.bench.harness,
as `clconv bench`):
  clconv.matmul  end to end: numpy in, host packing of B, upload, kernel, download into a new array
  device-only    buffers ready (A uploaded, B packed and uploaded): gemm_device + queue.finish
  numpy.matmul   float32, numpy's BLAS
Medians over rounds, GFLOP/s = 2*M*N*K / t, and ratios (median of per-round ratios, so a shared,
noisy machine still gives comparable figures). The last line is the same as one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics

import numpy as np

from clconv.bench.harness import median_ratio, seconds_of, time_calls
from clconv.gemm import gemm_device, matmul, pack_b
from clconv.runtime import get_runtime


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="M = K = N (default 2048)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--device", default=None, help="device spec, as for clconv --device")
    args = parser.parse_args(argv)

    size = args.size
    rt = get_runtime(args.device)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)

    a_buf, bp_buf, c_buf = rt.upload(a), rt.upload(pack_b(b)), rt.alloc(size * size * 4)

    def device_only():
        gemm_device(rt, a_buf, bp_buf, c_buf, size, size, size)
        rt.queue.finish()

    candidates = {
        "clconv.matmul": lambda: matmul(a, b, device=rt),
        "device-only": device_only,
        "numpy.matmul": lambda: np.matmul(a, b),
    }

    # Warm-up (builds the program, compiles the work-group function) and a correctness check.
    ref = a.astype(np.float64) @ b.astype(np.float64)
    got = matmul(a, b, device=rt)
    rel_err = float(np.abs(got - ref).max() / np.abs(ref).max())
    device_only()
    np.matmul(a, b)
    pack_s = seconds_of(lambda: pack_b(b))

    names = list(candidates)
    samples = time_calls(candidates, args.repeat, warmup=0)  # warmed up above
    flops = 2.0 * size ** 3
    medians = {name: statistics.median(s) for name, s in samples.items()}
    ratios = {name: median_ratio(samples[name], samples["numpy.matmul"]) for name in names if name != "numpy.matmul"}

    print(f"device: {rt.info.describe()}")
    print(f"SGEMM {size}x{size}x{size}, {args.repeat} interleaved rounds; max rel. error vs float64 {rel_err:.2e}; "
          f"pack_b on the host {pack_s * 1e3:.1f} ms")
    for name in names:
        ratio = f"  {ratios[name]:.2f}x numpy's time" if name in ratios else ""
        print(f"  {name:14s} median {medians[name] * 1e3:8.1f} ms  {flops / medians[name] / 1e9:7.1f} GFLOP/s"
              f"  (min {min(samples[name]) * 1e3:.1f} ms){ratio}")
    result = {
        "size": size,
        "repeat": args.repeat,
        "device": rt.info.describe(),
        "max_rel_error": rel_err,
        "pack_b_ms": pack_s * 1e3,
        "median_ms": {name: medians[name] * 1e3 for name in names},
        "gflops": {name: flops / medians[name] / 1e9 for name in names},
        "ratio_to_numpy": ratios,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
