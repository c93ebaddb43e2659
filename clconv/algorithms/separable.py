"""Separable correlation (cl/separable.cl): a row pass, then a column pass, for rank-1 kernels."""
from __future__ import annotations

import numpy as np

SUMMARY = "row pass then column pass; rank-1 kernels only (kh + kw taps per pixel instead of kh * kw)"
CL_FILE = "separable.cl"
SEP_W, SEP_ROWS = 16, 2  # values per work-item of the vectorised passes (as in cl/separable.cl)
CODES = {"float32": "f32", "uint8": "u8", "uint16": "u16"}
MAX = {"float32": 1.0, "uint8": 255.0, "uint16": 65535.0}


def refuses(kernel) -> str | None:
    """Why this algorithm cannot run ``kernel``, or None."""
    if kernel.separable_factors() is None:
        return f"kernel {kernel.spec!r} is not separable (its rank is above 1)"
    return None


def correlate(rt, src, dst, kernel, window, border_code: int, cval: float, mapping=None) -> None:
    """Integer sample types (``Planes.dtype``) and an output ``mapping`` are handled inside the
    passes; they need stride 1 (the engine ensures it)."""
    column, row = (np.ascontiguousarray(f, dtype=np.float32) for f in kernel.separable_factors())
    (h, w), (out_h, out_w) = src.shape, dst.shape
    cs, planes = src.interleave, src.planes
    tmp = rt.scratch("separable.tmp", planes * h * out_w * cs * 4)
    i32, f32 = np.int32, np.float32
    # Beyond the image, a whole row of constant pixels has filtered to cval * sum(row).
    column_cval = f32(cval * float(row.astype(np.float64).sum()))
    if window.stride == 1:
        use_abs, scale, bias = (mapping.use_abs, mapping.scale, mapping.bias) if mapping else (False, 1.0, 0.0)
        rt.launch(CL_FILE, f"row_pass_vec_{CODES[src.dtype]}", (-(-out_w * cs // SEP_W), h, planes),
                  src.buffer, i32(src.offset), tmp, rt.upload(row), i32(row.size), i32(h), i32(w), i32(out_w),
                  i32(cs), i32(window.dilation), i32(window.off[1]), i32(border_code), f32(cval))
        rt.launch(CL_FILE, f"column_pass_vec_{CODES[dst.dtype]}", (-(-out_w * cs // SEP_W), -(-out_h // SEP_ROWS), planes),
                  tmp, dst.buffer, i32(dst.offset), rt.upload(column), i32(column.size), i32(h), i32(out_w),
                  i32(out_h), i32(cs), i32(window.dilation), i32(window.off[0]), i32(border_code), column_cval,
                  i32(use_abs), f32(scale), f32(bias), f32(MAX[dst.dtype]))
        return
    assert cs == 1 and mapping is None and src.dtype == dst.dtype == "float32", "strided passes take float planes"
    rt.launch(CL_FILE, "row_pass", (out_w, h, planes),
              src.buffer, i32(src.offset), tmp, rt.upload(row), i32(row.size),
              i32(h), i32(w), i32(out_w), i32(window.stride), i32(window.dilation), i32(window.off[1]),
              i32(border_code), f32(cval))
    rt.launch(CL_FILE, "column_pass", (out_w, out_h, planes),
              tmp, dst.buffer, i32(dst.offset), rt.upload(column), i32(column.size),
              i32(h), i32(out_w), i32(out_h), i32(window.stride), i32(window.dilation), i32(window.off[0]),
              i32(border_code), column_cval)
