"""What clconv is measured against: scipy.ndimage and OpenCV doing the same work on the host, and
the copy bandwidths that GB/s figures are compared with. scipy and cv2 are imported when used."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clconv.bench.checks import integer_mapping, weights_for
from clconv.bench.harness import Candidate
from clconv.constants import max_value

CV2_BORDERS = {
    "reflect": "BORDER_REFLECT",
    "mirror": "BORDER_REFLECT_101",
    "nearest": "BORDER_REPLICATE",
    "constant": "BORDER_CONSTANT",
}  # cv2 has no wrap
NO_OPENCV = "OpenCV not installed (pip install opencv-python-headless)"
MIB = 1 << 20
BANDWIDTH_BYTES = 64 * MIB


@dataclass(frozen=True)
class Reference:
    """A reference library's call on the host (no device), to time beside clconv's."""

    name: str
    device: str
    call: Callable[[], object]
    out_reused: bool = True


def opencv():
    """The cv2 module, or None where OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def host_description(library: str) -> str:
    """The device column of a reference's rows: the library, its version (and OpenCV's threads)."""
    if library == "cv2":
        cv2 = opencv()
        return f"host: OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads" if cv2 else "host: OpenCV"
    import scipy

    return f"host: numpy {np.__version__}, scipy {scipy.__version__}"


def reference_libraries() -> list[str]:
    """The host libraries the references run on, as the JSON's header names them."""
    return [host_description("scipy")] + ([host_description("cv2")] if opencv() else [])


def as_candidates(refs: list[Reference], check) -> list[Candidate]:
    """``refs`` as the harness's Candidates, their outputs checked by ``check``."""
    return [Candidate(r.name, r.name, r.device, r.call, check, None, r.out_reused) for r in refs]


def scipy_reference(image: np.ndarray, kernel, border: str) -> Reference:
    """scipy.ndimage.correlate into a reused output; integer images: float32 result, the default
    mapping, rounded and clipped with numpy."""
    import scipy.ndimage as ndi

    weights = weights_for(image, kernel.weights)
    out = np.empty_like(image)
    dtype = image.dtype.name
    if np.dtype(dtype).kind != "u":
        call = lambda: ndi.correlate(image, weights, output=out, mode=border, cval=0.0)  # noqa: E731
        return Reference("scipy.ndimage.correlate", host_description("scipy"), call)
    use_abs, bias = integer_mapping(kernel, dtype)
    tmp = np.empty(image.shape, np.float32)

    def mapped_call():
        ndi.correlate(image, weights, output=tmp, mode=border, cval=0.0)
        if use_abs:
            np.abs(tmp, out=tmp)
        if bias:
            np.add(tmp, np.float32(bias), out=tmp)
        np.clip(np.rint(tmp, out=tmp), 0.0, max_value(dtype), out=tmp)
        np.copyto(out, tmp, casting="unsafe")
        return out

    return Reference("scipy.ndimage.correlate", host_description("scipy"), mapped_call)


def _sep_filter(cv2, image: np.ndarray, factors, bias: float, border_type: int) -> Reference:
    """cv2.sepFilter2D with the 1D ``factors`` (column, row) into a reused output."""
    column, row = (np.ascontiguousarray(f, dtype=np.float32) for f in factors)
    out = np.empty_like(image)
    return Reference(
        "cv2.sepFilter2D",
        host_description("cv2"),
        lambda: cv2.sepFilter2D(image, -1, row, column, dst=out, delta=bias, borderType=border_type),
    )


def cv2_references(image: np.ndarray, kernel, border: str) -> list[Reference]:
    """cv2.filter2D, and cv2.sepFilter2D for rank-1 kernels, writing into reused outputs.
    None where OpenCV is missing, for wrap (cv2 has none), >4 channels, kernels larger than the
    image, or an integer mapping with abs and a bias, or abs on 16-bit (no single cv2 call)."""
    cv2 = opencv()
    if cv2 is None or border not in CV2_BORDERS or (image.ndim == 3 and image.shape[2] > 4):
        return []
    if kernel.shape[0] > image.shape[0] or kernel.shape[1] > image.shape[1]:
        return []  # cv2 reflects only once: kernels larger than the image are not comparable
    border_type = getattr(cv2, CV2_BORDERS[border])
    dtype = image.dtype.name
    use_abs, bias = integer_mapping(kernel, dtype) if np.dtype(dtype).kind == "u" else (False, 0.0)
    if use_abs and (bias or dtype != "uint8"):
        return []
    k32 = np.ascontiguousarray(kernel.weights, dtype=np.float32)
    out = np.empty_like(image)
    if use_abs:  # 8-bit edge detectors: float result, then |v| saturated to 8 bits
        tmp = np.empty(image.shape, np.float32)

        def filter2d():
            cv2.filter2D(image, cv2.CV_32F, k32, dst=tmp, borderType=border_type)
            return cv2.convertScaleAbs(tmp, dst=out)
    else:

        def filter2d():
            return cv2.filter2D(image, -1, k32, dst=out, delta=bias, borderType=border_type)

    refs = [Reference("cv2.filter2D", host_description("cv2"), filter2d)]
    factors = kernel.separable_factors()
    if factors is not None and not use_abs and min(kernel.shape) > 1:
        refs.append(_sep_filter(cv2, image, factors, bias, border_type))
    return refs


def reference_candidates(image: np.ndarray, kernel, border: str, check) -> list[Candidate]:
    """scipy, and OpenCV where it is comparable, as candidates of one workload."""
    return as_candidates([scipy_reference(image, kernel, border), *cv2_references(image, kernel, border)], check)


def goal_references(image: np.ndarray, kernel, name: str, factors=None) -> list[Reference]:
    """The goal's one reference: ``cv2.sepFilter2D`` with the given 1D ``factors`` (column, row),
    or the named reference of ``cv2_references`` (reflect border); [] without OpenCV."""
    cv2 = opencv()
    if cv2 is None:
        return []
    if name == "cv2.sepFilter2D" and factors is not None:
        return [_sep_filter(cv2, image, factors, 0.0, cv2.BORDER_REFLECT)]
    return [r for r in cv2_references(image, kernel, "reflect") if r.name == name]


def bank_references(image: np.ndarray, bank: list) -> list[Reference]:
    """A bank of kernels done one kernel at a time: 8 scipy calls, and 8 cv2.filter2D where
    OpenCV is installed (reflect border), each returning new arrays as convolve_bank does."""
    import scipy.ndimage as ndi

    refs = [
        Reference(
            "8x scipy.ndimage.correlate",
            host_description("scipy"),
            lambda: [ndi.correlate(image, k.weights, mode="reflect") for k in bank],
            out_reused=False,
        )
    ]
    cv2 = opencv()
    if cv2 is not None:
        k32 = [k.weights.astype(np.float32) for k in bank]
        refs.append(
            Reference(
                "8x cv2.filter2D",
                host_description("cv2"),
                lambda: [cv2.filter2D(image, -1, k, borderType=cv2.BORDER_REFLECT) for k in k32],
                out_reused=False,
            )
        )
    return refs


# --------------------------------------------------------------------------- copy bandwidth


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
