"""What every timed output is checked against: reproducible inputs, the float64 oracle
(``scipy.ndimage.correlate`` on the float64 image), the tolerance and the error measure."""

from __future__ import annotations

import math

import numpy as np

from clconv.constants import max_value


def make_image(size: tuple[int, int], channels: int, dtype: str, seed: int = 0) -> np.ndarray:
    """A reproducible random image: HxW for one channel, else HxWxC; floats in [0, 1)."""
    rng = np.random.default_rng(seed)
    shape = tuple(size) if channels == 1 else (*size, channels)
    if dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, int(max_value(dtype)) + 1, size=shape, dtype=np.dtype(dtype))


def weights_for(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The 2D weights as scipy needs them for this image: HxWxC images filter each channel alone."""
    return weights if image.ndim == 2 else weights[:, :, None]


def integer_mapping(kernel, dtype: str) -> tuple[bool, float]:
    """(abs, bias in output units): the kernel's default mapping for an integer output."""
    return bool(kernel.abs), float(kernel.bias) * (max_value(dtype) + 1)


def oracle(image: np.ndarray, kernel, border: str) -> np.ndarray:
    """The float64 result clconv must reproduce: scipy.ndimage.correlate on the float64 image;
    for integer images the default mapping, rounded half to even and clipped."""
    import scipy.ndimage as ndi

    ref = ndi.correlate(image.astype(np.float64), weights_for(image, kernel.weights), mode=border, cval=0.0)
    dtype = image.dtype.name
    if np.dtype(dtype).kind == "u":
        use_abs, bias = integer_mapping(kernel, dtype)
        if use_abs:
            np.abs(ref, out=ref)
        ref += bias
        np.clip(np.rint(ref, out=ref), 0.0, max_value(dtype), out=ref)
    return ref


def tolerance(image: np.ndarray, weights: np.ndarray) -> float:
    """1 for integer outputs; 1e-4 * value range * max(1, sum |w|) for float outputs."""
    if image.dtype.kind == "u":
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
