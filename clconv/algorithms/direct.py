"""Direct sliding-window correlation (cl/direct.cl): any size, border and geometry."""
from __future__ import annotations

import numpy as np

SUMMARY = "sliding window over every tap; any kernel, border and geometry"
CL_FILE = "direct.cl"


def correlate(rt, src, dst, kernel, window, border_code: int, cval: float) -> None:
    kh, kw = kernel.shape
    w_buf = rt.upload(np.ascontiguousarray(kernel.weights, dtype=np.float32))
    (h, w), (out_h, out_w) = src.shape, dst.shape
    rt.launch(
        CL_FILE, "correlate", (out_w, out_h, src.count),
        src.buffer, np.int32(src.offset), dst.buffer, np.int32(dst.offset),
        w_buf, np.int32(kh), np.int32(kw), np.int32(h), np.int32(w),
        np.int32(out_h), np.int32(out_w), np.int32(window.stride), np.int32(window.dilation),
        np.int32(window.off[0]), np.int32(window.off[1]), np.int32(border_code), np.float32(cval),
    )
