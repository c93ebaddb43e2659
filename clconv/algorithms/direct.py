"""Direct sliding-window correlation (cl/direct.cl): any size, border and geometry."""
from __future__ import annotations

import numpy as np

from clconv.constants import MAX_VALUE, PROGRAM_DEFINES, TYPE_CODES
from clconv.resources import variant

SUMMARY = "sliding window over every tap; any kernel, border and geometry"
CL_FILE = "direct.cl"
VEC_ROWS = PROGRAM_DEFINES[CL_FILE]["VEC_ROWS"]  # output rows per work-item of correlate_vec by default
ROW_CHOICES = (2, 4)  # what `clconv tune` measures
# values per work-item, by input sample type (cl/direct.cl VEC_W_float, VEC_W_uchar, VEC_W_ushort)
VEC_W = {"float32": 16, "uint8": 32, "uint16": 32}


def vec_kernel_name(src_dtype: str, dst_dtype: str) -> str:
    """The correlate_vec variant reading ``src_dtype`` and writing ``dst_dtype`` samples."""
    if src_dtype == dst_dtype == "float32":
        return "correlate_vec"
    return f"correlate_vec_{TYPE_CODES[src_dtype]}_{TYPE_CODES[dst_dtype]}"


def correlate(rt, src, dst, kernel, window, border_code: int, cval: float, mapping=None,
              rows: int = VEC_ROWS) -> None:
    """Correlate ``src`` into ``dst``. Integer sample types (``Planes.dtype``) and an output
    ``mapping`` are handled inside the kernel; they need stride 1 (the engine ensures it).
    ``rows``: output rows per work-item of the interior kernel (a build variant)."""
    kh, kw = kernel.shape
    w_buf = rt.upload(np.ascontiguousarray(kernel.weights, dtype=np.float32))
    (h, w), (out_h, out_w) = src.shape, dst.shape
    cs = src.interleave  # channels interleaved in each plane (1 for plain planes)
    i32 = np.int32
    typed = mapping is not None or src.dtype != "float32" or dst.dtype != "float32"
    if window.stride == 1:  # vectorised interior tiles, and a scalar frame around them
        use_abs, scale, bias, maxval = (mapping.use_abs, mapping.scale, mapping.bias, MAX_VALUE[dst.dtype]) \
            if mapping else (False, 1.0, 0.0, MAX_VALUE[dst.dtype])
        suffix = vec_kernel_name(src.dtype, dst.dtype)[len("correlate_vec"):]
        common = (src.buffer, np.int64(src.offset), dst.buffer, np.int64(dst.offset), w_buf, i32(kh), i32(kw),
                  i32(h), i32(w), i32(out_h), i32(out_w), i32(cs), i32(window.dilation),
                  i32(window.off[0]), i32(window.off[1]))
        mapped = (i32(use_abs), np.float32(scale), np.float32(bias), np.float32(maxval))
        vec_w = VEC_W[src.dtype]
        interior = split_interior((h, w * cs), (out_h, out_w * cs), (kh, (kw - 1) * cs + 1),
                                  window.dilation, (window.off[0], window.off[1] * cs), tile=(rows, vec_w))
        (xa, ya, xb, yb), frame = frame_of(interior, out_h, out_w * cs)
        if interior is not None:
            program = CL_FILE if rows == VEC_ROWS else variant(CL_FILE, VEC_ROWS=rows)
            rt.launch(program, "correlate_vec" + suffix, (-(-(xb - xa) // vec_w), -(-(yb - ya) // rows), src.planes),
                      *common, *mapped, i32(xa), i32(ya), i32(xb), i32(yb))
        if frame:
            rt.launch(CL_FILE, "correlate_edge" + suffix, (frame, 1, src.planes),
                      *common, i32(border_code), np.float32(cval), *mapped,
                      i32(xa), i32(ya), i32(xb), i32(yb), np.int64(frame))
        return
    assert not typed, "sample conversion and mapping need stride 1"
    rt.launch(
        CL_FILE, "correlate", (out_w * cs, out_h, src.planes),
        src.buffer, np.int64(src.offset), dst.buffer, np.int64(dst.offset),
        w_buf, i32(kh), i32(kw), i32(h), i32(w),
        i32(out_h), i32(out_w), i32(cs), i32(window.stride), i32(window.dilation),
        i32(window.off[0]), i32(window.off[1]), i32(border_code), np.float32(cval),
    )


def split_interior(shape, out_shape, extent, dilation, off, tile):
    """The interior of an output of ``out_shape`` (rows, values): where every window lies inside
    the input of ``shape``, so the fast kernel needs no border rule. ``extent``: the window's
    (rows, values) at dilation 1 (values: (kw - 1) * cs + 1 with cs channels interleaved);
    ``off``: where the window starts relative to the output position.

    Returns (xa, ya, xb, yb): values xa..xb-1 of rows ya..yb-1; None when not even one ``tile``
    fits. Everything else is the frame."""
    (h, row_len), (out_h, out_len) = shape, out_shape

    def inside(size, out_size, span, offset):
        # positions p with 0 <= p - offset and p - offset + (span - 1) * dilation < size
        return max(0, offset), min(out_size, size - (span - 1) * dilation + offset)

    xa, xb = inside(row_len, out_len, extent[1], off[1])
    ya, yb = inside(h, out_h, extent[0], off[0])
    if xb - xa < tile[1] or yb - ya < tile[0]:
        return None
    return xa, ya, xb, yb


def frame_of(interior, rows: int, out_len: int):
    """The frame kernels' bounds (xa, ya, xb, yb) and the number of values in the frame around
    ``interior`` (None: the frame is all ``rows`` x ``out_len``, as bounds (0, 0, 0, 1); see
    frame_position in cl/common.cl)."""
    if interior is None:
        return (0, 0, 0, 1), rows * out_len
    xa, ya, xb, yb = interior
    return interior, rows * out_len - (xb - xa) * (yb - ya)


BANK_CL_FILE = "bank.cl"
BANK = PROGRAM_DEFINES[BANK_CL_FILE]["BANK"]  # kernels per pass
BANK_W = 16  # outputs along a row per work-item (cl/bank.cl BANK_W: one float16)


def correlate_bank_fused(rt, src_buf, dst_buf, kernels, window, shape, out_shape, cs: int,
                         border_code: int, cval: float) -> None:
    """Same-shaped ``kernels`` over the interleaved float32 image in ``src_buf`` (stride 1), into
    ``len(kernels)`` outputs one after another in ``dst_buf``: each pass reads the input once
    for up to BANK kernels."""
    kh, kw = kernels[0].shape
    (h, w), (out_h, out_w) = shape, out_shape
    i32 = np.int32
    interior = split_interior((h, w * cs), (out_h, out_w * cs), (kh, (kw - 1) * cs + 1), window.dilation,
                              (window.off[0], window.off[1] * cs), tile=(1, BANK_W))
    (xa, ya, xb, yb), frame = frame_of(interior, out_h, out_w * cs)
    for start in range(0, len(kernels), BANK):
        chunk = kernels[start:start + BANK]
        weights = np.zeros((BANK, kh, kw), np.float32)
        for f, kernel in enumerate(chunk):
            weights[f] = kernel.weights
        common = (src_buf, dst_buf, np.int64(start * out_h * out_w * cs), i32(len(chunk)), rt.upload(weights),
                  i32(kh), i32(kw), i32(h), i32(w), i32(out_h), i32(out_w), i32(cs), i32(window.dilation),
                  i32(window.off[0]), i32(window.off[1]), i32(xa), i32(ya), i32(xb), i32(yb))
        if interior is not None:
            rt.launch(BANK_CL_FILE, "correlate_bank", (-(-(xb - xa) // BANK_W), yb - ya), *common)
        if frame:
            rt.launch(BANK_CL_FILE, "correlate_bank_edge", (frame,), *common,
                      i32(border_code), np.float32(cval), np.int64(frame))
