"""Direct sliding-window correlation (cl/direct.cl): any size, border and geometry."""
from __future__ import annotations

import numpy as np

SUMMARY = "sliding window over every tap; any kernel, border and geometry"
CL_FILE = "direct.cl"
VEC_W, VEC_ROWS = 16, 2  # outputs per work-item of correlate_vec (as in cl/direct.cl)


def correlate(rt, src, dst, kernel, window, border_code: int, cval: float) -> None:
    kh, kw = kernel.shape
    w_buf = rt.upload(np.ascontiguousarray(kernel.weights, dtype=np.float32))
    (h, w), (out_h, out_w) = src.shape, dst.shape
    cs = src.interleave  # channels interleaved in each plane (1 for plain planes)
    i32 = np.int32
    if window.stride == 1:  # vectorised: 16 x 2 outputs per work-item
        rt.launch(
            CL_FILE, "correlate_vec", (-(-out_w * cs // VEC_W), -(-out_h // VEC_ROWS), src.planes),
            src.buffer, i32(src.offset), dst.buffer, i32(dst.offset), w_buf, i32(kh), i32(kw),
            i32(h), i32(w), i32(out_h), i32(out_w), i32(cs), i32(window.dilation),
            i32(window.off[0]), i32(window.off[1]), i32(border_code), np.float32(cval),
        )
        return
    rt.launch(
        CL_FILE, "correlate", (out_w * cs, out_h, src.planes),
        src.buffer, i32(src.offset), dst.buffer, i32(dst.offset),
        w_buf, i32(kh), i32(kw), i32(h), i32(w),
        i32(out_h), i32(out_w), i32(cs), i32(window.stride), i32(window.dilation),
        i32(window.off[0]), i32(window.off[1]), i32(border_code), np.float32(cval),
    )
