"""Direct sliding-window correlation (cl/direct.cl): any size, border and geometry."""
from __future__ import annotations

import numpy as np

SUMMARY = "sliding window over every tap; any kernel, border and geometry"
CL_FILE = "direct.cl"
VEC_W, VEC_ROWS = 16, 2  # outputs per work-item of correlate_vec (as in cl/direct.cl)
MAX = {"float32": 1.0, "uint8": 255.0, "uint16": 65535.0}


TYPE_CODES = {"float32": "f32", "uint8": "u8", "uint16": "u16"}


def vec_kernel_name(src_dtype: str, dst_dtype: str) -> str:
    """The correlate_vec variant reading ``src_dtype`` and writing ``dst_dtype`` samples."""
    if src_dtype == dst_dtype == "float32":
        return "correlate_vec"
    return f"correlate_vec_{TYPE_CODES[src_dtype]}_{TYPE_CODES[dst_dtype]}"


def correlate(rt, src, dst, kernel, window, border_code: int, cval: float, mapping=None) -> None:
    """Correlate ``src`` into ``dst``. Integer sample types (``Planes.dtype``) and an output
    ``mapping`` are handled inside the kernel; they need stride 1 (the engine ensures it)."""
    kh, kw = kernel.shape
    w_buf = rt.upload(np.ascontiguousarray(kernel.weights, dtype=np.float32))
    (h, w), (out_h, out_w) = src.shape, dst.shape
    cs = src.interleave  # channels interleaved in each plane (1 for plain planes)
    i32 = np.int32
    typed = mapping is not None or src.dtype != "float32" or dst.dtype != "float32"
    if window.stride == 1:  # vectorised: 16 x 2 outputs per work-item
        use_abs, scale, bias, maxval = (mapping.use_abs, mapping.scale, mapping.bias, MAX[dst.dtype]) if mapping \
            else (False, 1.0, 0.0, MAX[dst.dtype])
        rt.launch(
            CL_FILE, vec_kernel_name(src.dtype, dst.dtype), (-(-out_w * cs // VEC_W), -(-out_h // VEC_ROWS), src.planes),
            src.buffer, i32(src.offset), dst.buffer, i32(dst.offset), w_buf, i32(kh), i32(kw),
            i32(h), i32(w), i32(out_h), i32(out_w), i32(cs), i32(window.dilation),
            i32(window.off[0]), i32(window.off[1]), i32(border_code), np.float32(cval),
            i32(use_abs), np.float32(scale), np.float32(bias), np.float32(maxval),
        )
        return
    assert not typed, "sample conversion and mapping need stride 1"
    rt.launch(
        CL_FILE, "correlate", (out_w * cs, out_h, src.planes),
        src.buffer, i32(src.offset), dst.buffer, i32(dst.offset),
        w_buf, i32(kh), i32(kw), i32(h), i32(w),
        i32(out_h), i32(out_w), i32(cs), i32(window.stride), i32(window.dilation),
        i32(window.off[0]), i32(window.off[1]), i32(border_code), np.float32(cval),
    )


BANK_CL_FILE = "bank.cl"
BANK, BANK_W = 8, 16  # kernels per pass and outputs along a row per work-item (as in cl/bank.cl)


def correlate_bank_fused(rt, src_buf, dst_buf, kernels, window, shape, out_shape, cs: int,
                         border_code: int, cval: float) -> None:
    """Same-shaped ``kernels`` over the interleaved float32 image in ``src_buf`` (stride 1), into
    ``len(kernels)`` outputs one after another in ``dst_buf``: each pass reads the input once
    for up to BANK kernels."""
    kh, kw = kernels[0].shape
    (h, w), (out_h, out_w) = shape, out_shape
    i32 = np.int32
    for start in range(0, len(kernels), BANK):
        chunk = kernels[start:start + BANK]
        weights = np.zeros((BANK, kh, kw), np.float32)
        for f, kernel in enumerate(chunk):
            weights[f] = kernel.weights
        rt.launch(BANK_CL_FILE, "correlate_bank", (-(-out_w * cs // BANK_W), out_h),
                  src_buf, dst_buf, np.int64(start * out_h * out_w * cs), i32(len(chunk)),
                  rt.upload(weights), i32(kh), i32(kw),
                  i32(h), i32(w), i32(out_h), i32(out_w), i32(cs), i32(window.dilation),
                  i32(window.off[0]), i32(window.off[1]), i32(border_code), np.float32(cval))
