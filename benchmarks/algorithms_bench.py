"""Where the algorithms win on this device: filter banks through one GEMM vs separate direct
passes, and direct vs separable by kernel size (the crossover behind `auto`).

    python benchmarks/algorithms_bench.py [--size 2048] [--repeat 5] [--device cpu]

Every timing is end to end through the public API (numpy in, numpy out), interleaved round by
round with its peers in an order that rotates (clconv.bench.harness, as `clconv bench`), and
reported as a median over rounds; ratios are medians of per-round ratios, so a noisy, shared
machine still gives comparable figures. Each result is checked against the direct algorithm
before it is timed.
"""
from __future__ import annotations

import argparse
import json
import statistics

import numpy as np

import clconv
from clconv.bench.harness import median_ratio, time_calls
from clconv.kernels import parse_spec


def bank_of(size: int, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((size, size)).astype(np.float64) for _ in range(count)]


def bench_banks(image, repeat, device, rows):
    try:
        import cv2  # optional reference
    except ImportError:
        cv2 = None
    for ksize in (3, 7):
        bank = bank_of(ksize, 8)
        candidates = {
            "bank, one GEMM": lambda: clconv.convolve_bank(image, bank, algorithm="gemm", device=device),
            "8 direct passes": lambda: [clconv.convolve(image, k, algorithm="direct", device=device) for k in bank],
            "bank, auto": lambda: clconv.convolve_bank(image, bank, device=device),
        }
        if cv2 is not None:
            candidates["8 cv2.filter2D"] = lambda: [cv2.filter2D(image, -1, k.astype(np.float32),
                                                                 borderType=cv2.BORDER_REFLECT) for k in bank]
        reference = [clconv.convolve(image, k, algorithm="direct", device=device) for k in bank]
        for got, want in zip(clconv.convolve_bank(image, bank, algorithm="gemm", device=device), reference):
            np.testing.assert_allclose(got, want, atol=1e-3 * float(np.abs(want).max()))
        samples = time_calls(candidates, repeat)
        for name, times in samples.items():
            seconds = statistics.median(times)
            flops = 2 * 8 * ksize * ksize * image.size
            rows.append({"workload": f"bank 8 x {ksize}x{ksize}", "candidate": name, "median_ms": seconds * 1e3,
                         "gflop_s": flops / seconds / 1e9,
                         "vs 8 direct": median_ratio(samples["8 direct passes"], times)})


def bench_separable(image, repeat, device, rows):
    for size in (3, 5, 7, 9, 15, 31):
        spec = f"box:size={size}"
        kernel = parse_spec(spec)
        want = clconv.convolve(image, spec, algorithm="direct", device=device)
        got = clconv.convolve(image, spec, algorithm="separable", device=device)
        np.testing.assert_allclose(got, want, atol=1e-4 * float(np.abs(want).max()))
        samples = time_calls({name: (lambda name=name: clconv.convolve(image, spec, algorithm=name, device=device))
                              for name in ("direct", "separable", "gemm")}, repeat)
        auto = clconv.algorithms.choose_model(kernel, device_kind="cpu")[0]
        for name, times in samples.items():
            seconds = statistics.median(times)
            rows.append({"workload": f"{spec} ({size * size} taps)", "candidate": name, "median_ms": seconds * 1e3,
                         "gflop_s": 2 * size * size * image.size / seconds / 1e9,
                         "vs direct": median_ratio(samples["direct"], times), "auto picks": auto})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--only", choices=["banks", "separable"], default=None)
    args = parser.parse_args()
    image = np.random.default_rng(1).random((args.size, args.size), dtype=np.float32) * 255
    rows = []
    if args.only in (None, "banks"):
        bench_banks(image, args.repeat, args.device, rows)
    if args.only in (None, "separable"):
        bench_separable(image, args.repeat, args.device, rows)
    from clconv.runtime import get_runtime

    print(f"device: {get_runtime(args.device).info.describe()}; image {args.size}x{args.size} float32; "
          f"medians of {args.repeat} interleaved rounds")
    for row in rows:
        extra = "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                          if k not in ("workload", "candidate", "median_ms", "gflop_s"))
        print(f"{row['workload']:<26} {row['candidate']:<16} {row['median_ms']:9.1f} ms "
              f"{row['gflop_s']:7.2f} GFLOP/s  {extra}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
