"""Separable correlation (cl/separable.cl): a row pass, then a column pass, for rank-1 kernels."""
from __future__ import annotations

import numpy as np

SUMMARY = "row pass then column pass; rank-1 kernels only (kh + kw taps per pixel instead of kh * kw)"
CL_FILE = "separable.cl"


def refuses(kernel) -> str | None:
    """Why this algorithm cannot run ``kernel``, or None."""
    if kernel.separable_factors() is None:
        return f"kernel {kernel.spec!r} is not separable (its rank is above 1)"
    return None


def correlate(rt, src, dst, kernel, window, border_code: int, cval: float) -> None:
    column, row = (np.ascontiguousarray(f, dtype=np.float32) for f in kernel.separable_factors())
    (h, w), (out_h, out_w) = src.shape, dst.shape
    tmp = rt.alloc(src.count * h * out_w * 4)
    i32 = np.int32
    rt.launch(CL_FILE, "row_pass", (out_w, h, src.count),
              src.buffer, i32(src.offset), tmp, rt.upload(row), i32(row.size),
              i32(h), i32(w), i32(out_w), i32(window.stride), i32(window.dilation), i32(window.off[1]),
              i32(border_code), np.float32(cval))
    # Beyond the image, a whole row of constant pixels has filtered to cval * sum(row).
    rt.launch(CL_FILE, "column_pass", (out_w, out_h, src.count),
              tmp, dst.buffer, i32(dst.offset), rt.upload(column), i32(column.size),
              i32(h), i32(out_w), i32(out_h), i32(window.stride), i32(window.dilation), i32(window.off[0]),
              i32(border_code), np.float32(cval * float(row.astype(np.float64).sum())))
