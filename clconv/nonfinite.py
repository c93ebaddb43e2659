"""Float images holding NaN or +-Inf, filtered with scipy.ndimage's semantics on every algorithm.

scipy.ndimage.correlate skips the taps whose weight is 0, so a non-finite sample reaches only the
outputs whose window holds it at a non-zero weight. In IEEE arithmetic 0 * NaN is NaN, and every
algorithm multiplies every tap it has (direct and separable the zero taps too, gemm the whole
patch, the FFT every sample into every output: one NaN would spread over its whole tile).

So an image with non-finite samples is filtered in two parts, one kernel of a chain at a time:

* the finite part: the image with every non-finite sample replaced by 0, by the plan's own
  algorithm (the zeros add nothing, so each output is the sum of its finite taps);
* where they land: the indicators of NaN, +Inf and -Inf correlated (direct, float32: counts are
  exact below 2^24) with the indicators of the kernel's non-zero, positive and negative weights,
  through the same border and geometry. An output whose window holds a NaN at a non-zero weight,
  or both an infinite term of each sign, is NaN; else +Inf or -Inf where it holds infinite terms
  of one sign (x = +Inf at w > 0 or x = -Inf at w < 0 gives +Inf); else the finite part.

Finite images (all integer images) never come here: ``has_nonfinite`` is one reduction.
The output mapping (scale, abs, bias; then rounding and clipping for integer outputs, NaN to 0 as
the device's pack kernels do) is applied on the host at the end. With ``alpha='keep'`` the rule
applies to the colour channels; the kept alpha is the sample under the anchor, non-finite or not.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from clconv.constants import max_value
from clconv.kernels import Linear, Magnitude
from clconv.params import Mapping

COUNT = 0.5  # a float32 count of indicator taps is an exact integer: > 0.5 means "at least one"


def has_nonfinite(pixels: np.ndarray) -> bool:
    """Whether a float image holds NaN or +-Inf: one float32 sum first (NaN and Inf survive it;
    3.4 ms for 4096x4096 here, the exact test only when it is not finite, as after an overflow)."""
    if pixels.dtype.kind != "f":
        return False
    with np.errstate(invalid="ignore", over="ignore"):  # Inf - Inf, or an overflow: the exact test
        total = pixels.sum()
    return not np.isfinite(total) and not np.isfinite(pixels).all()


def execute(rt, pixels: np.ndarray, plan, out: np.ndarray | None, run) -> np.ndarray:
    """``plan`` over ``pixels`` (which holds non-finite samples); ``run(rt, pixels, plan, out)`` is
    the engine's execute, used for every finite part."""
    image = pixels.astype(np.float32, copy=False)
    for kernel in plan.kernels:
        stage = replace(plan, kernels=(kernel,), mapping=Mapping(), out_dtype=np.dtype(np.float32))
        if isinstance(kernel, Magnitude):
            gx, gy = (_linear(rt, image, replace(stage, kernels=(part,)), run) for part in kernel.parts)
            image = np.hypot(gx, gy)
            if plan.keep_alpha:
                image[..., -1] = gx[..., -1]  # the kept alpha, not a magnitude
        else:
            image = _linear(rt, image, stage, run)
    result = _map(image, plan)
    if out is None:
        return result
    out[...] = result
    return out


def _linear(rt, image: np.ndarray, stage, run) -> np.ndarray:
    """One linear kernel, float32 in and out, no mapping."""
    finite = np.isfinite(image)
    if finite.all():
        return run(rt, image, stage, None)
    result = run(rt, np.where(finite, image, np.float32(0)), stage, None)
    weights = stage.kernels[0].weights
    # the indicators run every channel plainly (alpha weighting would scale the counts)
    counting = replace(stage, algorithm="direct", keep_alpha=False, cval=0.0)

    def count(mask: np.ndarray, taps: np.ndarray) -> np.ndarray:
        if not mask.any() or not taps.any():
            return np.zeros(result.shape, bool)
        kernel = Linear("indicator", taps.astype(np.float64))
        return run(rt, mask.astype(np.float32), replace(counting, kernels=(kernel,)), None) > COUNT

    nonzero, positive, negative = weights != 0, weights > 0, weights < 0
    nan = np.isnan(image)
    up, down = image == np.inf, image == -np.inf
    if stage.keep_alpha:  # a colour stored under alpha 0 is hidden: it reaches no visible pixel
        hidden = np.zeros(image.shape, bool)
        hidden[..., :-1] = image[..., -1:] == 0
        nan, up, down = nan & ~hidden, up & ~hidden, down & ~hidden
    to_plus = count(up, positive) | count(down, negative)
    to_minus = count(up, negative) | count(down, positive)
    undefined = count(nan, nonzero) | (to_plus & to_minus)
    colours = slice(0, result.shape[2] - 1) if stage.keep_alpha else slice(None)
    for mask, value in ((to_plus, np.inf), (to_minus, -np.inf), (undefined, np.nan)):
        result[..., colours][mask[..., colours]] = value
    return result


def _map(image: np.ndarray, plan) -> np.ndarray:
    """The plan's output mapping and sample type, as the device's pack kernels apply them."""
    mapped = image.shape[2] - 1 if plan.keep_alpha else image.shape[2]
    m = plan.mapping
    values = image.astype(np.float32, copy=True)
    part = values[..., :mapped]
    if m.use_abs:
        np.abs(part, out=part)
    part *= np.float32(m.scale)
    part += np.float32(m.bias)
    if plan.out_dtype == np.float32:
        return values
    values = np.nan_to_num(values, nan=0.0)
    np.clip(values, 0.0, max_value(plan.out_dtype), out=values)
    return np.rint(values).astype(plan.out_dtype)
