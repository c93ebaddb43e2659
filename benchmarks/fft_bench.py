"""FFT correlation against direct and cv2.filter2D (which uses a DFT for large kernels).

    python benchmarks/fft_bench.py [--repeat 9] [--warmup 4] [--device cpu] [--json out.json]
                                   [--sizes 1024 2048] [--kernels 7 11 15 21 31] [--no-sweep]

Headline: a 31x31 dense random kernel on a 2048x2048 float32 image, reflect border, end to end
through clconv.convolve (numpy in, fresh numpy out) for fft and direct, and cv2.filter2D with
BORDER_REFLECT at its default thread count. Then a crossover sweep, fft vs direct (and cv2), over
kernel sizes and image sizes. Candidates run interleaved round by round, in an order that rotates,
after warm-up calls (the first calls also pay page faults of fresh buffers and PoCL's first
enqueues): clconv.bench.harness, as `clconv bench`. The table gives median ms and the median of
per-round ratios, so a shared, noisy machine still gives comparable ratios. Every result is
checked against direct (and cv2) before it is timed.
"""
from __future__ import annotations

import argparse
import json
import statistics

import numpy as np

import clconv
from clconv.bench.harness import median_ratio, time_calls


def workload(size: int, ksize: int, repeat: int, warmup: int, device, cv2) -> list[dict]:
    rng = np.random.default_rng(size + ksize)
    image = rng.random((size, size), dtype=np.float32)
    weights = rng.standard_normal((ksize, ksize))
    candidates = {
        "fft": lambda: clconv.convolve(image, weights, algorithm="fft", device=device),
        "direct": lambda: clconv.convolve(image, weights, algorithm="direct", device=device),
    }
    if cv2 is not None:
        w32 = weights.astype(np.float32)
        candidates["cv2.filter2D"] = lambda: cv2.filter2D(image, -1, w32, borderType=cv2.BORDER_REFLECT)
    want = clconv.convolve(image, weights, algorithm="direct", device=device)
    got = clconv.convolve(image, weights, algorithm="fft", device=device)
    tolerance = 1e-4 * float(np.abs(weights).sum())  # SPEC precision: value range 1 times sum|w|
    assert float(np.abs(got - want).max()) <= tolerance, "fft differs from direct"
    if cv2 is not None:
        assert float(np.abs(got - candidates["cv2.filter2D"]()).max()) <= tolerance, "fft differs from cv2"
    samples = time_calls(candidates, repeat, warmup)
    return [{"size": size, "kernel": ksize, "candidate": name, "median_ms": statistics.median(seconds) * 1e3,
             "min_ms": min(seconds) * 1e3, "fft_vs_this": median_ratio(samples["fft"], seconds)}
            for name, seconds in samples.items()]


def device_profile(size: int, ksize: int, device) -> dict[str, float]:
    """Kernel time of one fft call (after warm-up calls), from the queue's profiling."""
    from clconv.runtime import get_runtime

    rt = get_runtime(device)
    rng = np.random.default_rng(0)
    image = rng.random((size, size), dtype=np.float32)
    weights = rng.standard_normal((ksize, ksize))
    for _ in range(3):
        clconv.convolve(image, weights, algorithm="fft", device=device)
    with rt.recording() as events:
        clconv.convolve(image, weights, algorithm="fft", device=device)
    rt.queue.finish()
    return {"total_ms": rt.device_seconds(events) * 1e3, "kernels": len(events)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--device", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--kernels", type=int, nargs="+", default=[7, 11, 15, 21, 31])
    parser.add_argument("--no-sweep", action="store_true", help="only the 31x31 on 2048x2048 headline")
    parser.add_argument("--json", help="write every row to this file")
    args = parser.parse_args(argv)
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        print(f"cv2 {cv2.__version__}, {cv2.getNumThreads()} threads")
    from clconv.runtime import get_runtime

    print(f"device: {get_runtime(args.device).info.describe()}")
    rows = []
    print("\n31x31 dense random kernel, 2048x2048 float32, reflect, end to end:")
    headline = workload(2048, 31, args.repeat, args.warmup, args.device, cv2)
    rows += headline
    for row in headline:
        print(f"  {row['candidate']:14s} median {row['median_ms']:8.1f} ms  min {row['min_ms']:8.1f} ms  "
              f"fft/this {row['fft_vs_this']:.2f}")
    profile = device_profile(2048, 31, args.device)
    print(f"  fft device time {profile['total_ms']:.1f} ms in {profile['kernels']} kernels (incl. the engine's "
          "unpack and pack)")
    if not args.no_sweep:
        print("\ncrossover sweep (median ms; ratio fft/direct < 1: fft wins):")
        print(f"  {'size':>5s} {'kernel':>6s} {'fft':>8s} {'direct':>8s} {'cv2':>8s} {'fft/direct':>10s} "
              f"{'fft/cv2':>8s}")
        for size in args.sizes:
            for ksize in args.kernels:
                found = workload(size, ksize, max(3, args.repeat // 2), max(2, args.warmup // 2), args.device, cv2)
                rows += found
                by = {r["candidate"]: r for r in found}
                cv = by.get("cv2.filter2D")
                print(f"  {size:5d} {ksize:6d} {by['fft']['median_ms']:8.1f} {by['direct']['median_ms']:8.1f} "
                      f"{cv['median_ms'] if cv else float('nan'):8.1f} {by['direct']['fft_vs_this']:10.2f} "
                      f"{cv['fft_vs_this'] if cv else float('nan'):8.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"clconv": clconv.__version__, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
