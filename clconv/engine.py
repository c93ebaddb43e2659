"""How a Plan runs on a device: one upload, every kernel device to device, one download.

Images are filtered as float32 planes [C][H][W] in the input's own units.
Algorithms only ever correlate planes; this module adds what surrounds them:
dtype conversion, alpha weighting, gradient magnitude and the output mapping.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace

import numpy as np

from clconv import algorithms, nonfinite, tiling, tuned
from clconv.algorithms import direct
from clconv.constants import FLOAT_BYTES, TYPE_CODES, max_value
from clconv.kernels import Linear, Magnitude
from clconv.params import BORDER_CODES, Geometry, Mapping, Planes, Window

PIXELS_CL = "pixels.cl"
ANCHOR = Linear("anchor", np.ones((1, 1)))  # samples the pixel an output pixel stands for


@dataclass(frozen=True)
class Plan:
    """What to compute. Kernels are already flipped when ``flip`` is set.

    ``algorithm`` is 'auto' or a registry name; how each kernel runs is
    decided when its input size is known (``choices`` says it in advance).
    """

    kernels: tuple
    algorithm: str = "auto"
    border: str = "reflect"
    cval: float = 0.0
    flip: bool = False
    geometry: Geometry = Geometry()
    keep_alpha: bool = False  # the last channel is alpha, kept (and weights colour: _filter_alpha_weighted)
    mapping: Mapping = Mapping()
    out_dtype: np.dtype = np.dtype(np.float32)
    alpha_max: float = 1.0  # the input's full alpha (255, 65535 or 1.0)

    def output_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Output height and width for an input of ``shape``, validating the geometry."""
        for kernel in self.kernels:
            shape = self.geometry.window(shape, kernel.shape, self.flip).out_shape
        return shape


def schedule_for(rt, plan: Plan, shape: tuple[int, int], bank: bool = False):
    """The plan's schedule on ``rt``'s device: its tuned measurements when it has them."""
    return algorithms.schedule(plan, shape, rt.info, bank=bank, table=tuned.table_for(rt))


def new_planes(rt, count: int, shape: tuple[int, int]) -> Planes:
    """``count`` float32 planes of ``shape`` in a new device buffer."""
    return Planes(rt.alloc(count * shape[0] * shape[1] * FLOAT_BYTES), 0, count, shape)


def execute(
    rt, pixels: np.ndarray, plan: Plan, out: np.ndarray | None = None, sched=None, finite: bool = False
) -> np.ndarray:
    """Filter an HxWxC array (uint8, uint16 or float32) with ``plan`` on ``rt``'s device, by
    ``sched`` (clconv.algorithms.Schedule; default: the plan's schedule on this device).
    ``finite``: the caller has found no NaN/Inf in ``pixels`` (a bank: checked once)."""
    if not finite and nonfinite.has_nonfinite(pixels):  # NaN/Inf: scipy's semantics, any algorithm
        return nonfinite.execute(rt, pixels, plan, out, execute)
    h, w, channels = pixels.shape
    out_h, out_w = plan.output_shape((h, w))
    if out is None:
        out = np.empty((out_h, out_w, channels), plan.out_dtype)

    if sched is None:
        sched = schedule_for(rt, plan, (h, w))
    in_place = _in_place(pixels, plan, sched)
    if tiling.needs_tiles(rt, pixels, plan, in_place):  # what the path that would run holds
        return tiling.execute_tiled(rt, pixels, plan, out, execute_window)
    if in_place:
        return _execute_in_place(rt, pixels, plan, sched, out)
    planes = _unpack(rt, pixels)
    for kernel in plan.kernels:
        planes = _apply(rt, planes, kernel, plan, sched)
    return _pack(rt, planes, plan.mapping, channels - 1 if plan.keep_alpha else channels, out)


def _in_place(pixels: np.ndarray, plan: Plan, sched) -> bool:
    """Whether ``plan`` can filter the interleaved image as it is, with no conversion passes:
    no kept alpha and every step by an in-place algorithm; integer samples and an output
    mapping are converted inside the kernels, which needs stride 1 (float32 without mapping:
    any stride the algorithm takes in place)."""
    if plan.keep_alpha:
        return False
    plain = pixels.dtype == np.float32 and plan.out_dtype == np.float32 and plan.mapping == Mapping()
    if not plain and (plan.geometry.stride != 1 or any(isinstance(k, Magnitude) for k in plan.kernels)):
        return False
    strided = plan.geometry.stride != 1
    return all(step.algorithm.in_place and (step.algorithm.strided_in_place or not strided) for step in sched)


def _execute_in_place(rt, pixels: np.ndarray, plan: Plan, sched, out: np.ndarray) -> np.ndarray:
    """No conversion passes: the device reads the caller's array and writes ``out`` as they are
    (channels interleaved, taps ``channels`` apart), so memory is input + output (+ a chain's
    intermediates), zero-copy where the device shares host memory (``rt.wrap``). The first
    filter reads the input's samples, the last writes the output's, with the mapping."""
    h, w, channels = pixels.shape
    in_buf, out_buf = rt.wrap(pixels), rt.wrap(out, writable=True)  # both held until read_back
    src = Planes(in_buf, 0, channels, (h, w), channels, pixels.dtype.name)
    for index, kernel in enumerate(plan.kernels):
        window = plan.geometry.window(src.shape, kernel.shape, plan.flip)
        last = index == len(plan.kernels) - 1
        if last:
            dst = Planes(out_buf, 0, channels, window.out_shape, channels, out.dtype.name)
        else:
            size = channels * window.out_shape[0] * window.out_shape[1] * FLOAT_BYTES
            dst = Planes(rt.alloc(size), 0, channels, window.out_shape, channels)
        if isinstance(kernel, Magnitude):  # float32 in and out here
            _filter(rt, src, dst, kernel, window, plan, sched)
        else:
            mapping = plan.mapping if last and plan.mapping != Mapping() else None
            if dst.dtype != "float32" and mapping is None:
                mapping = Mapping()
            sched.step(kernel, src.shape).correlate(rt, src, dst, window, BORDER_CODES[plan.border], plan.cval, mapping)
        src = dst
    rt.read_back(out_buf, out)
    return out


def _unpack(rt, pixels: np.ndarray) -> Planes:
    h, w, channels = pixels.shape
    planes = new_planes(rt, channels, (h, w))
    rt.launch(
        PIXELS_CL,
        f"unpack_{TYPE_CODES[pixels.dtype.name]}",
        (w, h),
        rt.upload(np.ascontiguousarray(pixels)),
        planes.buffer,
        np.int32(h),
        np.int32(w),
        np.int32(channels),
    )
    return planes


def _pack(rt, planes: Planes, mapping: Mapping, mapped: int, out: np.ndarray) -> np.ndarray:
    out_h, out_w = planes.shape
    out_buf = rt.alloc(out.nbytes)
    rt.launch(
        PIXELS_CL,
        f"pack_{TYPE_CODES[out.dtype.name]}",
        (out_w, out_h),
        planes.buffer,
        out_buf,
        np.int32(out_h),
        np.int32(out_w),
        np.int32(planes.count),
        np.int32(mapped),
        np.int32(mapping.use_abs),
        np.float32(mapping.scale),
        np.float32(mapping.bias),
        np.float32(max_value(out.dtype)),
    )
    return rt.download(out_buf, out)


def execute_bank(rt, pixels: np.ndarray, plan: Plan, mappings: list) -> list:
    """Each kernel of ``plan`` applied to the same image (not chained): one upload, one
    bank of correlations (one unfold and one GEMM with the gemm algorithm), one result
    per kernel, each with its own output mapping."""
    h, w, channels = pixels.shape
    singles = [replace(plan, kernels=(kernel,), mapping=mapping) for kernel, mapping in zip(plan.kernels, mappings)]
    if nonfinite.has_nonfinite(pixels):  # each kernel by the non-finite rules (clconv.nonfinite)
        return [execute(rt, pixels, single) for single in singles]
    sched = schedule_for(rt, plan, (h, w), bank=True)  # every kernel's step, on the one input
    bank_algorithm = sched.steps[0].algorithm
    in_place = all(_in_place(pixels, single, sched) for single in singles)
    if bank_algorithm.fused_bank and in_place and _fusable(rt, pixels, plan, singles, sched):
        return _execute_bank_fused(rt, pixels, plan, bank_algorithm)
    if bank_algorithm.correlate_bank is None and in_place:
        # zero-copy reads cost nothing to repeat: each kernel straight from the caller's array
        return [execute(rt, pixels, single, sched=sched, finite=True) for single in singles]
    planes = _unpack(rt, pixels)
    mapped = channels - 1 if plan.keep_alpha else channels
    linear = all(isinstance(k, Linear) for k in plan.kernels)
    shapes = {k.shape for k in plan.kernels}
    if plan.keep_alpha or not linear or len(shapes) != 1:
        results = [_apply(rt, planes, kernel, plan, sched) for kernel in plan.kernels]  # each by its own rules
    else:
        window = plan.geometry.window((h, w), shapes.pop(), plan.flip)
        results = [new_planes(rt, channels, window.out_shape) for _ in plan.kernels]
        _correlate_bank(rt, planes, results, list(plan.kernels), window, plan, sched)
    return [
        _pack(rt, result, mapping, mapped, np.empty((*result.shape, channels), plan.out_dtype))
        for result, mapping in zip(results, mappings)
    ]


def _fusable(rt, pixels: np.ndarray, plan: Plan, singles: list, sched) -> bool:
    """A bank that one fused pass can run: float32 in and out with no mapping, same-shaped
    linear kernels, stride 1, all of them scheduled on the fusing algorithm, outputs within
    one buffer."""
    if len(plan.kernels) < 2 or plan.geometry.stride != 1 or pixels.dtype != np.float32:
        return False
    if not all(isinstance(k, Linear) for k in plan.kernels) or len({k.shape for k in plan.kernels}) != 1:
        return False
    if len({step.algorithm.name for step in sched}) != 1:
        return False
    if not all(s.out_dtype == np.float32 and s.mapping == Mapping() for s in singles):
        return False
    window = plan.geometry.window(pixels.shape[:2], plan.kernels[0].shape, plan.flip)
    out_bytes = len(plan.kernels) * window.out_shape[0] * window.out_shape[1] * pixels.shape[2] * FLOAT_BYTES
    return out_bytes <= rt.max_alloc and pixels.nbytes <= rt.max_alloc


def _execute_bank_fused(rt, pixels: np.ndarray, plan: Plan, algorithm) -> list:
    """The bank in fused passes: the caller's array in, one array of outputs out (``rt.wrap``)."""
    h, w, channels = pixels.shape
    window = plan.geometry.window((h, w), plan.kernels[0].shape, plan.flip)
    out = np.empty((len(plan.kernels), *window.out_shape, channels), np.float32)
    in_buf, out_buf = rt.wrap(pixels), rt.wrap(out, writable=True)  # both held until read_back
    algorithm.fused_bank(
        rt,
        in_buf,
        out_buf,
        list(plan.kernels),
        window,
        (h, w),
        window.out_shape,
        channels,
        BORDER_CODES[plan.border],
        plan.cval,
    )
    rt.read_back(out_buf, out)
    return list(out)


def execute_window(rt, pixels: np.ndarray, plan: Plan, window: Window) -> np.ndarray:
    """The single kernel of ``plan`` over ``pixels`` through an explicit ``window`` (the
    tiles of clconv.tiling), on the general path."""
    channels = pixels.shape[2]
    sched = schedule_for(rt, plan, pixels.shape[:2])
    result = _apply(rt, _unpack(rt, pixels), plan.kernels[0], plan, sched, window)
    out = np.empty((*window.out_shape, channels), plan.out_dtype)
    return _pack(rt, result, plan.mapping, channels - 1 if plan.keep_alpha else channels, out)


def _apply(rt, planes: Planes, kernel, plan: Plan, sched, window: Window | None = None) -> Planes:
    """One kernel of the chain: new planes of the output shape."""
    if window is None:
        window = plan.geometry.window(planes.shape, kernel.shape, plan.flip)
    result = new_planes(rt, planes.count, window.out_shape)
    if not plan.keep_alpha:
        _filter(rt, planes, result, kernel, window, plan, sched)
        return result
    colours = planes.count - 1
    colour, alpha = planes.sub(0, colours), planes.sub(colours, 1)
    _sample(rt, alpha, result.sub(colours, 1), window, plan)
    _filter_alpha_weighted(rt, colour, alpha, result.sub(0, colours), kernel, window, plan, sched)
    return result


def _correlate(rt, src: Planes, dst: Planes, kernel: Linear, window: Window, plan: Plan, sched, cval=None):
    cval = plan.cval if cval is None else cval
    sched.step(kernel, src.shape).correlate(rt, src, dst, window, BORDER_CODES[plan.border], cval)


def _correlate_bank(rt, src: Planes, dsts: list, kernels: list, window: Window, plan: Plan, sched) -> None:
    """Several same-shaped kernels over the same planes: at once where the algorithm can."""
    steps = [sched.step(k, src.shape) for k in kernels]
    algorithm = steps[0].algorithm
    same_choice = all(step.algorithm is algorithm for step in steps)
    if algorithm.correlate_bank and same_choice and len({k.shape for k in kernels}) == 1:
        algorithm.correlate_bank(rt, src, dsts, kernels, window, BORDER_CODES[plan.border], plan.cval)
        return
    for kernel, dst in zip(kernels, dsts):
        _correlate(rt, src, dst, kernel, window, plan, sched)


def _filter(rt, src: Planes, dst: Planes, kernel, window: Window, plan: Plan, sched) -> None:
    """Plain filtering of every plane of ``src``: a linear kernel, or a gradient magnitude."""
    if isinstance(kernel, Linear):
        _correlate(rt, src, dst, kernel, window, plan, sched)
        return
    gx, gy = (
        Planes(rt.alloc(src.count * dst.size * FLOAT_BYTES), 0, src.count, dst.shape, src.interleave) for _ in range(2)
    )
    _correlate_bank(rt, src, [gx, gy], list(kernel.parts), window, plan, sched)
    n = src.count * dst.size
    rt.launch(PIXELS_CL, "magnitude", (n,), gx.buffer, gy.buffer, dst.buffer, np.int64(dst.offset), np.int64(n))


def _sample(rt, src: Planes, dst: Planes, window: Window, plan: Plan) -> None:
    """The pixel that stands for each output pixel (its anchor), border rules applied."""
    at_anchor = Window(window.out_shape, window.sample_off, window.sample_off, window.stride, 1)
    direct.correlate(rt, src, dst, ANCHOR, at_anchor, BORDER_CODES[plan.border], plan.cval)


def _filter_alpha_weighted(rt, colour: Planes, alpha: Planes, dst: Planes, kernel, window, plan, sched) -> None:
    """Colour under a kept alpha, for every kernel: no pixel whose alpha is 0 lends its colour.

    Only a*c and a are ever filtered (hidden colours are multiplied by 0 before any sum), so a
    visible output pixel cannot depend on the colour stored under a fully transparent one.
    With weights w = k, alpha in 0..1 (a / alpha_max), sums over the kernel's taps:

    * k >= 0 (blurs): the alpha-weighted mean m = sum(k*a*c) / sum(k*a), as before;
    * signed k (sharpen, edge detectors, emboss): every tap's colour counts as
      a*c + (1-a)*m, m = sum(|k|*a*c) / sum(|k|*a) the alpha-weighted mean of the colours
      under the kernel, i.e. colour = sum(k*a*c) + m * (sum(k) - sum(k*a)).

    The signed rule is plain filtering wherever the kernel sees only opaque pixels; a flat
    colour stays flat up to a cut-out's edge (times sum(k): 0 for an edge detector, so a
    silhouette is no edge), and no denominator but sum(|k|*a) >= 0 appears, so nothing blows
    up where sum(k*a) crosses 0 (a sharpen over a soft edge). Where no visible pixel is under
    a non-zero weight (sum(|k|*a) is 0) m is the colour under the anchor: a visible anchor's
    own colour, or a transparent output pixel's hidden one. With the constant border every
    channel outside is ``cval`` (the premultiplied product cval*cval). A gradient magnitude
    takes the rule on each of its parts.
    """
    premultiplied = new_planes(rt, colour.count, colour.shape)
    rt.launch(
        PIXELS_CL,
        "premultiply",
        (colour.size, colour.count),
        colour.buffer,
        np.int64(colour.offset),
        alpha.buffer,
        np.int64(alpha.offset),
        premultiplied.buffer,
        np.int64(colour.size),
    )
    fallback = new_planes(rt, colour.count, dst.shape)
    _sample(rt, colour, fallback, window, plan)
    numerator = new_planes(rt, colour.count, dst.shape)
    denominator = new_planes(rt, 1, dst.shape)
    work = (premultiplied, alpha, fallback, numerator, denominator)
    if isinstance(kernel, Linear):
        _alpha_linear(rt, work, dst, kernel, window, plan, sched)
        return
    gx, gy = (new_planes(rt, colour.count, dst.shape) for _ in range(2))
    for part, out in zip(kernel.parts, (gx, gy)):
        _alpha_linear(rt, work, out, part, window, plan, sched)
    n = colour.count * dst.size
    rt.launch(PIXELS_CL, "magnitude", (n,), gx.buffer, gy.buffer, dst.buffer, np.int64(dst.offset), np.int64(n))


def _alpha_linear(rt, work, dst: Planes, kernel: Linear, window, plan, sched) -> None:
    """One linear kernel's colour by _filter_alpha_weighted's rule, into ``dst``."""
    premultiplied, alpha, fallback, numerator, denominator = work
    step = sched.step(kernel, alpha.shape)
    weights = step if kernel.nonnegative else _absolute_step(rt, step, alpha.shape)
    border, squared = BORDER_CODES[plan.border], plan.cval * plan.cval
    weights.correlate(rt, premultiplied, numerator, window, border, squared)
    weights.correlate(rt, alpha, denominator, window, border, plan.cval)
    # Where no visible pixel contributes, sums by an inexact algorithm (FFT) are round-off, not 0.
    exact = weights.algorithm.exact_zeros
    zero = 0.0 if exact else 1e-5 * float(np.abs(kernel.weights).sum()) * plan.alpha_max
    n = dst.size
    rt.launch(
        PIXELS_CL,
        "unpremultiply",
        (n, dst.count),
        numerator.buffer,
        denominator.buffer,
        fallback.buffer,
        dst.buffer,
        np.int64(dst.offset),
        np.int64(n),
        np.float32(zero),
    )
    if kernel.nonnegative:
        return
    # dst holds m; now sum(k*a*c) and sum(k*a) into the same buffers, and the signed rule
    step.correlate(rt, premultiplied, numerator, window, border, squared)
    step.correlate(rt, alpha, denominator, window, border, plan.cval)
    full = float(kernel.weights.sum()) * plan.alpha_max
    rt.launch(
        PIXELS_CL,
        "fill_hidden",
        (n, dst.count),
        numerator.buffer,
        denominator.buffer,
        dst.buffer,
        np.int64(dst.offset),
        np.int64(n),
        np.float32(full),
        np.float32(plan.alpha_max),
    )


# a signed Linear -> the Linear of its |weights|
_ABSOLUTE: weakref.WeakKeyDictionary[Linear, Linear] = weakref.WeakKeyDictionary()


def _absolute_step(rt, step, shape: tuple[int, int]):
    """How |k| runs beside ``step`` (which runs k): by the same algorithm and parameters unless
    that algorithm refuses |k| (a low-rank k whose |k| is not), then as auto would run it."""
    kernel = step.kernel
    weights = _ABSOLUTE.get(kernel)
    if weights is None:
        factors = None if kernel.factors is None else tuple(np.abs(f) for f in kernel.factors)
        weights = _ABSOLUTE[kernel] = Linear(f"|{kernel.spec}|", np.abs(kernel.weights), factors=factors)
    if not step.algorithm.refuses(weights):
        return replace(step, kernel=weights)
    return algorithms.choose("auto", weights, image_pixels=shape[0] * shape[1], device_kind=rt.info.kind)
