"""Convolution as matrix multiplication: im2col (cl/im2col.cl) + the tiled SGEMM (cl/gemm.cl).

out[f, pixel] = sum_t W[f, t] * patch[t, pixel]: one GEMM with M = number of
kernels, K = taps, N = pixels. The patch matrix is unfolded in bands of output
rows so it never exceeds BAND_BYTES, whatever the image size.
"""

from __future__ import annotations

import numpy as np

from clconv.constants import FLOAT_BYTES
from clconv.gemm import PANEL, gemm_device, panel_count
from clconv.params import band_rows

SUMMARY = "im2col unfold in row bands, then one tiled SGEMM for all kernels of a bank"
CL_FILE = "im2col.cl"
BAND_BYTES = 64 << 20  # bound on the patch matrix of one band (plus one row of padding columns)


def correlate(rt, src, dst, kernel, window, border_code: int, cval: float) -> None:
    """One kernel over every plane of ``src``: a bank of one (see correlate_bank)."""
    correlate_bank(rt, src, [dst], [kernel], window, border_code, cval)


def correlate_bank(rt, src, dsts, kernels, window, border_code: int, cval: float) -> None:
    """Every kernel (all of one shape) over every plane of ``src``: one unfold and one GEMM per band."""
    kh, kw = kernels[0].shape
    taps, count = kh * kw, len(kernels)
    weights = np.ascontiguousarray(np.stack([k.weights.ravel() for k in kernels]), dtype=np.float32)
    a_buf = rt.upload(weights)
    (h, w), (out_h, out_w) = src.shape, dsts[0].shape
    rows = band_rows(BAND_BYTES, taps * out_w * FLOAT_BYTES, most=out_h)  # taps x (rows * out_w) floats
    most = rows * out_w
    cols = rt.scratch("im2col.cols", panel_count(most) * PANEL * taps * FLOAT_BYTES)
    band_out = rt.scratch("im2col.out", count * most * FLOAT_BYTES) if count > 1 else None
    i32 = np.int32
    for plane in range(src.count):
        for row0 in range(0, out_h, rows):
            n = min(rows, out_h - row0) * out_w
            n_padded = panel_count(n) * PANEL
            rt.launch(
                CL_FILE,
                "im2col",
                (n_padded, taps),
                src.buffer,
                np.int64(src.offset + plane * h * w),
                cols,
                i32(kh),
                i32(kw),
                i32(h),
                i32(w),
                i32(out_w),
                i32(row0),
                i32(n),
                i32(n_padded),
                i32(window.stride),
                i32(window.dilation),
                i32(window.off[0]),
                i32(window.off[1]),
                i32(border_code),
                np.float32(cval),
            )
            at = plane * out_h * out_w + row0 * out_w  # where this band starts in each output
            if band_out is None:
                gemm_device(rt, a_buf, cols, dsts[0].buffer, 1, n, taps, c_offset=dsts[0].offset + at)
                continue
            gemm_device(rt, a_buf, cols, band_out, count, n, taps)
            for f, dst in enumerate(dsts):
                rt.copy(
                    dst.buffer,
                    band_out,
                    n * FLOAT_BYTES,
                    dst_offset=(dst.offset + at) * FLOAT_BYTES,
                    src_offset=f * n * FLOAT_BYTES,
                )
