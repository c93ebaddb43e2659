"""`clconv tune`: measure the candidate schedules on a device and write them for `auto`.

What is measured, for float32 images of a few sizes and square kernels of a few sides:
direct and fft with a dense kernel, and separable (each band-size variant) with kernels
of rank 1 and rank 2, each end to end through the engine (numpy in, a reused numpy array
out), median of a few runs. The result is one JSON file per device (clconv.tuned reads it
and says how ``auto`` uses it), written atomically (temporary file, then rename), so two
processes tuning at once leave one whole file.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time

import numpy as np

from clconv.algorithms import REGISTRY, Schedule, Step
from clconv.api import build_plan
from clconv.engine import execute
from clconv.kernels import Linear

# the measurements' file and table (clconv.tuned), also under the names this module has always offered
from clconv.tuned import SCHEMA, SEPARABLE_RANKS, Table, _valid, cache_path, device_key, forget, load, table_for  # noqa: F401

SIZES = ((512, 512), (1024, 1024), (2048, 2048), (4096, 4096))
QUICK_SIZES = ((256, 256), (512, 512))
SIDES = (3, 5, 7, 9, 15, 21, 31)
HOPELESS = 4.0  # a candidate whose first run is this much slower than the best so far is not repeated


# ----------------------------------------------------------------------------- measuring


def grid_kernels(side: int) -> dict:
    """Kernels of one side for the measurements: dense (rank above 4), rank 1 and rank 2."""
    rng = np.random.default_rng(side)
    x = np.arange(side) - (side - 1) / 2
    g1 = np.exp(-x * x / (2 * max(side / 6, 0.5) ** 2))
    g2 = np.exp(-x * x / (2 * max(side / 3, 0.8) ** 2))
    kernels = {
        None: Linear(f"dense {side}x{side}", rng.standard_normal((side, side))),
        1: Linear(f"rank-1 {side}x{side}", np.outer(g1, g1) / g1.sum() ** 2),
        2: Linear(f"rank-2 {side}x{side}", np.outer(g1, g1) / g1.sum() ** 2 - np.outer(g2, g2) / g2.sum() ** 2),
    }
    if side <= 5:  # small dense kernels may happen to have rank <= 4: that does not matter for direct/fft
        return kernels
    assert kernels[None].rank is None and kernels[1].rank == 1 and kernels[2].rank == 2
    return kernels


def _time(run, repeat: int, best_so_far: float) -> float:
    run()  # compiles, allocates, warms caches
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    if first > HOPELESS * best_so_far:
        return first
    times = [first]
    for _ in range(repeat - 1):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rt, sizes=SIZES, sides=SIDES, repeat: int = 3, echo=None) -> list[dict]:
    """Every candidate over the grid, end to end through the engine with a forced schedule."""
    rows = []
    for size in sizes:
        image = np.random.default_rng(1).random((*size, 1), dtype=np.float32)
        out = np.empty_like(image)
        for side in sides:
            best = math.inf
            for rank, kernel in grid_kernels(side).items():
                plan = build_plan([kernel], in_dtype=np.float32)
                kernel = plan.kernels[0]
                # dense kernels for the others; rank 1 and 2 for those that run separable terms
                for algorithm in (a for a in REGISTRY.values() if a.alone and a.by_terms == (rank is not None)):
                    name = algorithm.name
                    for params in algorithm.variants:
                        step = Step(kernel, algorithm, "tune", dict(params), "tuned")
                        sched = Schedule((step,), ((id(kernel), tuple(size)),), "tune")
                        run = lambda: execute(rt, image, plan, out, sched=sched)  # noqa: B023, E731 - timed now
                        seconds = _time(run, repeat, best)
                        best = min(best, seconds)
                        rows.append(
                            {
                                "size": list(size),
                                "side": side,
                                "rank": rank,
                                "algorithm": name,
                                "params": dict(params),
                                "ms": round(seconds * 1e3, 4),
                            }
                        )
                        if echo:
                            extra = "".join(f" {k}={v}" for k, v in params.items())
                            echo(
                                f"{size[1]}x{size[0]} {side}x{side} {'dense' if rank is None else f'rank {rank}'}"
                                f" {name}{extra}: {seconds * 1e3:.2f} ms"
                            )
    return rows


def tune(rt, quick: bool = False, repeat: int = 3, echo=None) -> tuple[str, dict]:
    """Measure ``rt``'s device and write its cache file; returns (path, document)."""
    from clconv.atomic import write_atomically

    started = time.perf_counter()
    rows = measure(rt, QUICK_SIZES if quick else SIZES, SIDES, repeat, echo)
    doc = {
        "schema": SCHEMA,
        "device": device_key(rt),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.perf_counter() - started, 1),
        "measurements": rows,
    }
    path = cache_path(rt)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, lambda f: f.write(json.dumps(doc, indent=1).encode()))
    forget()
    return path, doc
