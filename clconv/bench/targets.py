"""The performance goals that ``clconv bench --preset targets`` checks (issue 10), their
workloads' sizes, how a measured value meets a goal, and the kernels the goals hand over as arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Target:
    """One performance goal: which value of which workload, compared by ``op`` with ``threshold``."""

    key: str
    workload: str
    figure: str  # what the value is
    op: str  # ">=" or "<=", or "info" (reported, no goal)
    threshold: float | None
    unit: str = ""


SPEEDUP = "x"  # the unit of speed-ups: the goals drawn as bars

# Speed-ups are (reference time / clconv time), numpy in and out (or whole processes for apply and
# batch), medians of per-round ratios in the same run: >= 1 means faster. The goals of issue 10.
GAUSS_ARRAY = "speed-up, kernel given as np.outer(g, g).astype(float32), vs cv2.sepFilter2D with g"
RANK2_ARRAY = "speed-up, kernel given as a float32 array, vs cv2.filter2D with the same kernel"
TARGETS = (
    Target(
        "conv3x3_f32", "3x3 float32 4096x4096 vs cv2.filter2D", "speed-up vs cv2.filter2D (reflect)", ">=", 1.7, SPEEDUP
    ),
    Target(
        "sharpen_u8_rgb",
        "sharpen 8-bit RGB 3840x2160 vs cv2.filter2D, same pixels",
        "speed-up vs cv2.filter2D",
        ">=",
        1.7,
        SPEEDUP,
    ),
    Target("gauss5_array", "5x5 Gaussian f32 array, 4096x4096 vs cv2.sepFilter2D", GAUSS_ARRAY, ">=", 1.2, SPEEDUP),
    Target("gauss15_array", "15x15 Gaussian f32 array, 4096x4096 vs cv2.sepFilter2D", GAUSS_ARRAY, ">=", 1.2, SPEEDUP),
    Target("gauss31_array", "31x31 Gaussian f32 array, 4096x4096 vs cv2.sepFilter2D", GAUSS_ARRAY, ">=", 1.2, SPEEDUP),
    Target("log15_rank2", "15x15 LoG sigma 2 (rank 2), 4096x4096 vs cv2.filter2D", RANK2_ARRAY, ">=", 3.0, SPEEDUP),
    Target("dog15_rank2", "15x15 DoG sigma 1.5-3 (rank 2), 4096x4096 vs cv2.filter2D", RANK2_ARRAY, ">=", 3.0, SPEEDUP),
    Target(
        "dense31_f32",
        "31x31 dense random float32 2048x2048 vs cv2.filter2D",
        "speed-up vs cv2.filter2D",
        ">=",
        1.3,
        SPEEDUP,
    ),
    Target(
        "bank8_3x3",
        "bank of 8 3x3 kernels, 2048x2048 vs 8 cv2.filter2D",
        "speed-up, convolve_bank vs 8 cv2.filter2D",
        ">=",
        1.5,
        SPEEDUP,
    ),
    Target("sgemm", "SGEMM 2048^3 vs numpy.matmul", "speed-up, clconv.matmul vs numpy.matmul", ">=", 0.9, SPEEDUP),
    Target(
        "apply_vs_cv2",
        "clconv apply -k sobel-x 1 MP PNG vs Pillow + cv2 one-liner",
        "speed-up, whole processes, vs python -c (Pillow, cv2.filter2D, abs, clip, PNG)",
        ">=",
        1.0,
        SPEEDUP,
    ),
    Target(
        "apply_vs_vips",
        "clconv apply -k sobel-x 1 MP PNG vs vips conv",
        "speed-up, whole processes, vs vips conv (integer precision)",
        ">=",
        1.0,
        SPEEDUP,
    ),
    Target(
        "batch_vs_cv2",
        "clconv batch --jobs 2, 20 PNGs 1024x768 vs Pillow+cv2 Pool(2)",
        "speed-up, whole processes, vs the one-liner's work over the files in a Pool of 2",
        ">=",
        1.0,
        SPEEDUP,
    ),
    # Former goals, reported for information.
    Target(
        "memory_direct",
        "peak memory, 4096x4096 RGB float32, 3x3 sharpen",
        "peak RSS - (input + output)",
        "info",
        None,
        "MiB",
    ),
    Target(
        "memory_separable",
        "peak memory, 4096x4096 RGB float32, gaussian:sigma=2",
        "peak RSS - (input + output)",
        "info",
        None,
        "MiB",
    ),
    Target("apply_warm", "clconv apply -k sobel-x 1 MP PNG, caches warm", "seconds, median", "info", None, "s"),
    Target("apply_cold", "clconv apply -k sharpen 1 MP PNG, caches cold", "seconds", "info", None, "s"),
)


@dataclass(frozen=True)
class TargetSizes:
    """The sizes of the targets' workloads (the goals' by default; tests pass small ones)."""

    large: tuple = (4096, 4096)  # 3x3 float32, the Gaussians, LoG and DoG: (h, w)
    uhd: tuple = (2160, 3840)  # sharpen 8-bit RGB
    medium: tuple = (2048, 2048)  # dense 31x31, the bank of 8
    sgemm: int = 2048
    memory: tuple = (4096, 4096)  # peak memory, RGB float32
    png: tuple = (1024, 1024)  # clconv apply vs the one-liners (1 MP)
    batch_files: int = 20
    batch_png: tuple = (768, 1024)  # clconv batch vs the Pool
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
        evaluated.append(
            {
                "key": t.key,
                "workload": t.workload,
                "figure": t.figure,
                "value": value,
                "op": t.op,
                "threshold": t.threshold,
                "unit": t.unit,
                "met": met,
            }
        )
    return evaluated


# --------------------------------------------------------------------------- kernels handed over as arrays


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
    d2 = g * (x * x / sigma**4 - 1.0 / sigma**2)
    return (np.outer(d2, g) + np.outer(g, d2)).astype(np.float32)


def dog_array(size: int = 15, sigma1: float = 1.5, sigma2: float = 3.0) -> np.ndarray:
    """Difference of Gaussians G(sigma1) - G(sigma2) on ``size`` x ``size`` taps, as float32: rank 2."""
    g1, g2 = gaussian_1d(size, sigma1), gaussian_1d(size, sigma2)
    return (np.outer(g1, g1) - np.outer(g2, g2)).astype(np.float32)
