"""How a Plan runs on a device: one upload, every kernel device to device, one download.

Images are filtered as float32 planes [C][H][W] in the input's own units.
Algorithms only ever correlate planes; this module adds what surrounds them:
dtype conversion, alpha weighting, gradient magnitude and the output mapping.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clconv.algorithms import Algorithm
from clconv.kernels import Linear
from clconv.params import BORDER_CODES, Geometry, Window

PIXELS_CL = "pixels.cl"
UNPACK = {np.dtype(np.uint8): "unpack_u8", np.dtype(np.uint16): "unpack_u16", np.dtype(np.float32): "unpack_f32"}
PACK = {np.dtype(np.uint8): "pack_u8", np.dtype(np.uint16): "pack_u16", np.dtype(np.float32): "pack_f32"}
MAX_VALUE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}
FLOAT_BYTES = 4


@dataclass(frozen=True)
class Mapping:
    """v -> scale * (|v| if use_abs else v) + bias; integer outputs then round half to even and clip."""

    use_abs: bool = False
    scale: float = 1.0
    bias: float = 0.0


@dataclass(frozen=True)
class Plan:
    """What to compute. Kernels are already flipped when ``flip`` is set."""

    kernels: tuple
    algorithm: Algorithm
    border: str = "reflect"
    cval: float = 0.0
    flip: bool = False
    geometry: Geometry = Geometry()
    keep_alpha: bool = False  # the last channel is alpha, kept (and weights colour for blurs)
    mapping: Mapping = Mapping()
    out_dtype: np.dtype = np.dtype(np.float32)

    def output_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Output height and width for an input of ``shape``, validating the geometry."""
        for kernel in self.kernels:
            shape = self.geometry.window(shape, kernel.shape, self.flip).out_shape
        return shape


@dataclass(frozen=True)
class Planes:
    """``count`` float32 planes of ``shape``, starting ``offset`` floats into ``buffer``."""

    buffer: object
    offset: int
    count: int
    shape: tuple[int, int]

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def sub(self, first: int, count: int) -> "Planes":
        return Planes(self.buffer, self.offset + first * self.size, count, self.shape)


def new_planes(rt, count: int, shape: tuple[int, int]) -> Planes:
    return Planes(rt.alloc(count * shape[0] * shape[1] * FLOAT_BYTES), 0, count, shape)


def execute(rt, pixels: np.ndarray, plan: Plan, out: np.ndarray | None = None) -> np.ndarray:
    """Filter an HxWxC array (uint8, uint16 or float32) with ``plan`` on ``rt``'s device."""
    h, w, channels = pixels.shape
    out_h, out_w = plan.output_shape((h, w))
    if out is None:
        out = np.empty((out_h, out_w, channels), plan.out_dtype)
    planes = new_planes(rt, channels, (h, w))
    rt.launch(PIXELS_CL, UNPACK[pixels.dtype], (w, h),
              rt.upload(np.ascontiguousarray(pixels)), planes.buffer,
              np.int32(h), np.int32(w), np.int32(channels))
    for kernel in plan.kernels:
        planes = _apply(rt, planes, kernel, plan)
    mapping = plan.mapping
    mapped = channels - 1 if plan.keep_alpha else channels
    out_buf = rt.alloc(out.nbytes)
    rt.launch(PIXELS_CL, PACK[out.dtype], (out_w, out_h), planes.buffer, out_buf,
              np.int32(out_h), np.int32(out_w), np.int32(channels), np.int32(mapped),
              np.int32(mapping.use_abs), np.float32(mapping.scale), np.float32(mapping.bias),
              np.float32(MAX_VALUE[out.dtype]))
    return rt.download(out_buf, out)


def _apply(rt, planes: Planes, kernel, plan: Plan) -> Planes:
    """One kernel of the chain: new planes of the output shape."""
    window = plan.geometry.window(planes.shape, kernel.shape, plan.flip)
    result = new_planes(rt, planes.count, window.out_shape)
    if not plan.keep_alpha:
        _filter(rt, planes, result, kernel, window, plan)
        return result
    colours = planes.count - 1
    colour, alpha = planes.sub(0, colours), planes.sub(colours, 1)
    _sample(rt, alpha, result.sub(colours, 1), window, plan)
    if isinstance(kernel, Linear) and kernel.nonnegative:
        _filter_alpha_weighted(rt, colour, alpha, result.sub(0, colours), kernel, window, plan)
    else:
        _filter(rt, colour, result.sub(0, colours), kernel, window, plan)
    return result


def _correlate(rt, src: Planes, dst: Planes, weights: np.ndarray, window: Window, plan: Plan, cval=None):
    cval = plan.cval if cval is None else cval
    plan.algorithm.correlate(rt, src, dst, weights, window, BORDER_CODES[plan.border], cval)


def _filter(rt, src: Planes, dst: Planes, kernel, window: Window, plan: Plan) -> None:
    """Plain filtering of every plane of ``src``: a linear kernel, or a gradient magnitude."""
    if isinstance(kernel, Linear):
        _correlate(rt, src, dst, kernel.weights, window, plan)
        return
    gx, gy = new_planes(rt, src.count, dst.shape), new_planes(rt, src.count, dst.shape)
    _correlate(rt, src, gx, kernel.gx.weights, window, plan)
    _correlate(rt, src, gy, kernel.gy.weights, window, plan)
    n = src.count * dst.size
    rt.launch(PIXELS_CL, "magnitude", (n,), gx.buffer, gy.buffer, dst.buffer, np.int32(dst.offset), np.int32(n))


def _sample(rt, src: Planes, dst: Planes, window: Window, plan: Plan) -> None:
    """The pixel that stands for each output pixel (its anchor), border rules applied."""
    at_anchor = Window(window.out_shape, window.sample_off, window.sample_off, window.stride, 1)
    _correlate(rt, src, dst, np.ones((1, 1), np.float32), at_anchor, plan)


def _filter_alpha_weighted(rt, colour: Planes, alpha: Planes, dst: Planes, kernel, window, plan) -> None:
    """colour = sum(k*a*c) / sum(k*a): transparent pixels lend no colour to visible ones.

    With the constant border every channel outside is ``cval``, so the
    premultiplied product outside is cval*cval.
    """
    n_in, n_out = colour.size, dst.size
    premultiplied = new_planes(rt, colour.count, colour.shape)
    rt.launch(PIXELS_CL, "premultiply", (n_in, colour.count), colour.buffer, np.int32(colour.offset),
              alpha.buffer, np.int32(alpha.offset), premultiplied.buffer, np.int32(n_in))
    numerator = new_planes(rt, colour.count, dst.shape)
    denominator = new_planes(rt, 1, dst.shape)
    fallback = new_planes(rt, colour.count, dst.shape)
    _correlate(rt, premultiplied, numerator, kernel.weights, window, plan, cval=plan.cval * plan.cval)
    _correlate(rt, alpha, denominator, kernel.weights, window, plan)
    _sample(rt, colour, fallback, window, plan)
    rt.launch(PIXELS_CL, "unpremultiply", (n_out, colour.count), numerator.buffer, denominator.buffer,
              fallback.buffer, dst.buffer, np.int32(dst.offset), np.int32(n_out))
