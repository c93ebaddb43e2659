"""Separable correlation (cl/separable.cl): row passes, then one column pass.

A rank-1 kernel is one term, np.outer(column, row). A kernel of low rank r (a Laplacian or
difference of Gaussians, an unsharp mask: ``Linear.separable_terms``) is r terms: r row
passes into r intermediates, and one column pass that sums the r column filters, so the
output is written once, with the mapping, and each pixel costs r * (kh + kw) taps.
"""
from __future__ import annotations

import numpy as np

from clconv.algorithms import direct
from clconv.constants import FLOAT_BYTES, MAX_VALUE, PROGRAM_DEFINES, TYPE_CODES
from clconv.kernels import MAX_TERMS
from clconv.params import BORDER_CODES, band_rows
from clconv.resources import variant

SUMMARY = ("row passes then one column pass; kernels of rank r <= 4 (r * (kh + kw) taps per pixel "
           "instead of kh * kw)")
CL_FILE = "separable.cl"
SEP_W = 32  # values along a row per work-item of the vector passes (cl/separable.cl SEP_W: two float16)
SEP_ROWS = PROGRAM_DEFINES[CL_FILE]["COL_ROWS"]  # output rows per work-item of the column pass by default
BAND_BYTES = 16 << 20  # the row pass's output for one band stays under this: measured at 4096², 1 MiB 33 ms, 4 MiB 19, 16 MiB 17, 64 MiB 15
BAND_CHOICES = (4 << 20, 16 << 20, 64 << 20)  # what `clconv tune` measures (cache sizes differ by CPU)
COLUMN_ROWS = (2, 4)  # output rows per work-item of the column pass (COL_ROWS) tune measures
CONSTANT = BORDER_CODES["constant"]


def refuses(kernel) -> str | None:
    """Why this algorithm cannot run ``kernel``, or None."""
    if kernel.separable_terms() is None:
        return f"kernel {kernel.spec!r} is not separable (its rank is above {MAX_TERMS})"
    return None


def correlate(rt, src, dst, kernel, window, border_code: int, cval: float, mapping=None,
              band_bytes: int = BAND_BYTES, col_rows: int = SEP_ROWS) -> None:
    """Integer sample types (``Planes.dtype``) and an output ``mapping`` are handled inside the
    passes; they need stride 1 (the engine ensures it)."""
    terms = kernel.separable_terms()
    columns = np.ascontiguousarray(np.concatenate([c for c, _ in terms]), dtype=np.float32)
    rows = [np.ascontiguousarray(r, dtype=np.float32) for _, r in terms]
    (h, w), (out_h, out_w) = src.shape, dst.shape
    cs, planes = src.interleave, src.planes
    i32, f32 = np.int32, np.float32
    # Beyond the image, a whole row of constant pixels has filtered to cval * sum(row) in each term.
    column_cvals = np.array([cval * float(r.astype(np.float64).sum()) for r in rows], np.float32)
    if window.stride == 1 and (out_w * cs < SEP_W or out_h < col_rows):
        # narrower than one tile of the column pass: a few values, which direct computes as well
        direct.correlate(rt, src, dst, kernel, window, border_code, cval, mapping)
        return
    if window.stride == 1:
        _correlate_in_bands(rt, src, dst, columns, rows, window, border_code, cval, column_cvals, mapping,
                            band_bytes, col_rows)
        return
    assert cs == 1 and mapping is None and src.dtype == dst.dtype == "float32", "strided passes take float planes"
    term_floats = planes * h * out_w
    tmp = rt.scratch("separable.tmp", len(rows) * term_floats * FLOAT_BYTES)
    for t, row in enumerate(rows):
        rt.launch(CL_FILE, "row_pass", (out_w, h, planes),
                  src.buffer, np.int64(src.offset), tmp, rt.upload(row), i32(row.size),
                  i32(h), i32(w), i32(out_w), i32(window.stride), i32(window.dilation), i32(window.off[1]),
                  i32(border_code), f32(cval), np.int64(t * term_floats))
    k = columns.size // len(rows)
    rt.launch(CL_FILE, "column_pass", (out_w, out_h, planes),
              tmp, dst.buffer, np.int64(dst.offset), rt.upload(columns), i32(k),
              i32(h), i32(out_w), i32(out_h), i32(window.stride), i32(window.dilation), i32(window.off[0]),
              i32(border_code), rt.upload(column_cvals), i32(len(rows)), np.int64(term_floats))


def _correlate_in_bands(rt, src, dst, columns, rows, window, border_code, cval, column_cvals, mapping,
                        band_bytes: int, col_rows: int) -> None:
    """Stride 1: per band of output rows, the row passes make just the rows the band reads (border
    rows mapped there), one intermediate per term, and the column pass reads them with no border
    work along y. The row passes run a border-free vector kernel where they can and a scalar one
    for the rest (the frame)."""
    (h, w), (out_h, out_w) = src.shape, dst.shape
    cs, planes, terms = src.interleave, src.planes, len(rows)
    k, kw = columns.size // terms, rows[0].size
    i32, f32 = np.int32, np.float32
    use_abs, scale, bias = (mapping.use_abs, mapping.scale, mapping.bias) if mapping else (False, 1.0, 0.0)
    span = (k - 1) * window.dilation
    out_len = out_w * cs
    # bands of whole tiles of the column pass (col_rows rows) whose rows, every term's, fit band_bytes
    band_max = band_rows(band_bytes, terms * planes * out_len * FLOAT_BYTES, span=span + 1, unit=col_rows,
                         most=out_h)
    term_floats = planes * (band_max + span) * out_len
    tmp = rt.scratch("separable.band", terms * term_floats * FLOAT_BYTES)
    row_buf, column_buf = rt.upload(np.concatenate(rows)), rt.upload(columns)  # every term's filters
    # the values of a row whose taps all lie inside the image row
    inside_x = direct.split_interior((1, w * cs), (1, out_len), (1, (kw - 1) * cs + 1), window.dilation,
                                     (0, window.off[1] * cs), tile=(1, SEP_W))
    row_kernel = f"row_pass_vec_{TYPE_CODES[src.dtype]}"
    column_program = CL_FILE if col_rows == SEP_ROWS else variant(CL_FILE, COL_ROWS=col_rows)
    for band0 in range(0, out_h, band_max):
        band = min(band_max, out_h - band0)
        if band < col_rows:  # a short last band: start it earlier (those rows are written again, equal)
            band0, band = out_h - col_rows, col_rows
        first = band0 - window.off[0]  # the first image row this band's taps read
        made = band + span  # rows of each term's intermediate
        # rows inside the image, or every row where the border rule maps rows into it
        t_lo, t_hi = (max(0, -first), min(made, h - first)) if border_code == CONSTANT else (0, made)
        interior = (inside_x[0], t_lo, inside_x[2], t_hi) if inside_x and t_hi > t_lo else None
        (xa, ya, xb, yb), frame = direct.frame_of(interior, made, out_len)
        def args(t, first=first, made=made, xa=xa, ya=ya, xb=xb, yb=yb):  # this band's values
            """The row pass of term t (the pair kernel: terms t and t + 1)."""
            return (src.buffer, np.int64(src.offset), tmp, np.int64(t * term_floats), row_buf, i32(t), i32(kw),
                    i32(h), i32(w), i32(out_w), i32(cs), i32(window.dilation), i32(window.off[1]),
                    i32(border_code), i32(first), i32(made), i32(xa), i32(ya), i32(xb), i32(yb))

        if interior is not None:  # two terms per launch: each input vector loaded once for both
            tiles = (-(-(xb - xa) // SEP_W), yb - ya, planes)
            for t in range(0, terms, 2):
                if t + 1 < terms:
                    rt.launch(CL_FILE, row_kernel + "_pair", tiles, *args(t), np.int64(term_floats))
                else:
                    rt.launch(CL_FILE, row_kernel, tiles, *args(t))
        if frame:
            for t in range(terms):
                rt.launch(CL_FILE, row_kernel + "_edge", (frame, 1, planes), *args(t), f32(cval),
                          f32(column_cvals[t]), np.int64(frame))
        rt.launch(column_program, f"column_pass_vec_{TYPE_CODES[dst.dtype]}",
                  (-(-out_len // SEP_W), -(-band // col_rows), planes),
                  tmp, dst.buffer, np.int64(dst.offset + band0 * out_len), column_buf, i32(k),
                  i32(made), i32(out_w), i32(band), i32(cs), i32(window.dilation),
                  i32(use_abs), f32(scale), f32(bias), f32(MAX_VALUE[dst.dtype]), i32(out_h),
                  i32(terms), np.int64(term_floats))
