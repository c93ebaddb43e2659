"""The convolution as a matrix: the sparse doubly-blocked Toeplitz matrix of a linear kernel.

``convolution_matrix(kernel, (H, W), border, ...)`` returns the CSR matrix ``M`` of shape
``(Ho*Wo, H*W)`` with ``M @ image.ravel() == convolve(image, kernel, ...).ravel()`` for the same
border mode and geometry (SPEC "Semantics"): row ``oy*Wo + ox`` is output pixel ``(oy, ox)``,
column ``y*W + x`` is input pixel ``(y, x)``, both row-major.

Conventions
-----------
* Border taps are folded in: a tap that falls outside the image adds its weight onto the column
  of the pixel the border mode maps it to (``reflect``, ``mirror``, ``nearest``, ``wrap``; exactly
  ``map_index`` in ``cl/common.cl``), so a column can collect several taps.  ``constant`` taps
  contribute nothing to ``M``.
* ``M`` is canonical CSR: sorted column indices, no duplicates and no explicit zeros (a weight of
  0, or taps that cancel after folding, leave no entry).  Values are float64.
* ``constant`` with a non-zero ``border_value`` ``c`` is affine, not linear:
  ``convolve(x) == M @ x + offset`` with ``offset = c * (sum of the weights of the taps outside)``
  per output pixel.  ``return_offset=True`` returns ``(M, offset)``; without it a non-zero
  ``border_value`` with ``constant`` is an ``OptionError``.  Other modes ignore ``border_value``
  as ``convolve`` does.
* In 1D (a ``1xk`` kernel on a ``(1, n)`` image, constant border 0) the matrix is
  ``scipy.linalg.convolution_matrix(a, n, mode)`` with ``kernel = a`` and ``flip=True`` for
  ``'full'`` (``padding=k-1``) and ``'valid'`` (``padding=0``), and for ``'same'`` with odd ``k``
  (the default "same" geometry).  numpy's ``'same'`` keeps ``full[t + (k-1)//2]``, while
  ``--flip`` follows ``scipy.ndimage.convolve`` (anchor ``(k-1)//2`` of the flipped kernel),
  which keeps ``full[t + k//2]``: for even ``k`` numpy's ``'same'`` is instead the reversed
  kernel ``a[::-1]`` applied as written (``flip=False``, anchor ``k//2``).

The matrix is built with numpy index arithmetic, one block of output rows at a time, straight
into preallocated CSR arrays: no Python loop over pixels, no COO sort.  scipy is imported only
inside the functions, so ``import clconv`` stays light.
"""

from __future__ import annotations

import os
import re

import numpy as np

from clconv.errors import KernelSpecError, OptionError
from clconv.params import checked_border_value, map_index

__all__ = ["MAX_NNZ", "MAX_PRINT", "convolution_matrix", "format_matrix", "save_matrix", "parse_shape"]

#: Refuse matrices with more stored taps than this before allocating (about 3 GB as CSR).
MAX_NNZ = 1 << 28
#: ``format_matrix`` prints at most this many columns (input pixels) and 4x as many rows.
MAX_PRINT = 64
_MAX_SIDE = (1 << 31) - 1
_CHUNK = 1 << 22  # kernel slots per block of output rows (bounds the temporary memory)


# --------------------------------------------------------------------------- #
# The matrix
# --------------------------------------------------------------------------- #


def _axis(n_out: int, n_in: int, taps: int, stride: int, dilation: int, off: int, border: str):
    """One axis, folded: for each output coordinate the distinct input coordinates its taps read.

    Returns ``(index, count, fold, inside)``: ``index[o, a]`` for ``a < count[o]`` are the
    distinct mapped coordinates in increasing order (later slots are 0, unused);
    ``fold[o, a, t]`` is 1 where tap ``t`` reads ``index[o, a]``; ``inside[o, t]`` is 1 where tap
    ``t`` reads a pixel (0 only for constant-border taps outside).
    """
    o = np.arange(n_out, dtype=np.int64)[:, None]
    t = np.arange(taps, dtype=np.int64)[None, :]
    mapped = map_index(o * stride + t * dilation - off, n_in, border)  # (n_out, taps), -1 outside
    inside = mapped >= 0
    key = np.where(inside, mapped, n_in)  # outside sorts last
    order = np.argsort(key, axis=1, kind="stable")
    ordered = np.take_along_axis(key, order, axis=1)
    new = np.ones_like(ordered, dtype=bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    rank_sorted = np.cumsum(new, axis=1) - 1
    count = np.count_nonzero(new & (ordered < n_in), axis=1)
    rows = np.broadcast_to(o, ordered.shape)
    index = np.zeros((n_out, taps), dtype=np.int64)
    index[rows, rank_sorted] = np.where(ordered < n_in, ordered, 0)
    rank = np.empty_like(rank_sorted)
    np.put_along_axis(rank, order, rank_sorted, axis=1)
    fold = np.zeros((n_out, taps, taps), dtype=np.float64)
    fold[rows, rank, np.broadcast_to(t, rank.shape)] = inside
    return index, count, fold, inside.astype(np.float64)


def _checked_shape(shape) -> tuple[int, int]:
    try:
        h, w = shape
    except (TypeError, ValueError):
        raise OptionError("--shape", f"expected the image's (height, width), got {shape!r}") from None
    out = []
    for v in (h, w):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise OptionError("--shape", f"height and width must be integers, got {shape!r}")
        if not 1 <= int(v) <= _MAX_SIDE:
            raise OptionError("--shape", f"height and width must be 1 to {_MAX_SIDE}, got {shape!r}")
        out.append(int(v))
    return out[0], out[1]


def convolution_matrix(
    kernel,
    shape,
    border="reflect",
    *,
    flip=False,
    padding=None,
    stride=1,
    dilation=1,
    border_value=0.0,
    return_offset=False,
    max_nnz=MAX_NNZ,
):
    """The sparse matrix ``M`` with ``M @ image.ravel() == convolve(image, kernel, ...).ravel()``.

    Parameters
    ----------
    kernel : a kernel spec string, a 2D array of correlation weights, or a ``Linear`` kernel.
        A gradient magnitude (``sobel``) is not linear: ``KernelSpecError``.
    shape : ``(H, W)`` of the input image.
    border, flip, padding, stride, dilation, border_value : as ``clconv.convolve``.
    return_offset : also return the constant term: ``(M, offset)`` with
        ``M @ x.ravel() + offset == convolve(x).ravel()``.  ``offset`` (float64, length
        ``Ho*Wo``) is non-zero only for ``constant`` with a non-zero ``border_value``; that case
        is affine, and without ``return_offset`` it is an ``OptionError``.
    max_nnz : refuse (``OptionError``) before allocating when the matrix would store more taps.

    Returns
    -------
    ``scipy.sparse.csr_array`` of float64, shape ``(Ho*Wo, H*W)``, rows and columns row-major,
    canonical (sorted indices, no duplicates, no explicit zeros); or ``(M, offset)``.
    """
    from clconv.params import Geometry, normalize_border

    weights = _linear_weights(kernel, flip)
    h, w = _checked_shape(shape)
    mode = normalize_border(border)
    cval = _constant_term(border_value, border, mode, return_offset)
    kh, kw = weights.shape
    window = Geometry.parse(padding, stride, dilation).window((h, w), (kh, kw), bool(flip))
    (ho, wo), (off_y, off_x) = window.out_shape, window.off
    s, d = window.stride, window.dilation

    iy, _, fy, vy = _axis(ho, h, kh, s, d, off_y, mode)
    ix, _, fx, vx = _axis(wo, w, kw, s, d, off_x, mode)
    m = _folded_matrix(weights, (h, w), (iy, fy), (ix, fx), max_nnz)
    if not return_offset:
        return m
    offset = np.zeros(ho * wo, dtype=np.float64)
    if cval != 0.0:
        # weight of the taps outside, per output pixel: outside in y, plus inside in y and outside in x
        # (no cancellation: exactly 0 where every tap reads a pixel)
        outside = ((1.0 - vy) @ weights.sum(axis=1))[:, None] + vy @ weights @ (1.0 - vx).T
        offset = (cval * outside).ravel()
    return m, offset


def _linear_weights(kernel, flip: bool) -> np.ndarray:
    """The weights of a linear kernel (flipped for ``flip``); a magnitude has no matrix."""
    from clconv.kernels import Linear, parse_spec

    parsed = parse_spec(kernel)
    if not isinstance(parsed, Linear):
        raise KernelSpecError(
            parsed.spec,
            "is not linear (a gradient magnitude, sqrt(gx^2 + gy^2)), "
            "so it has no convolution matrix; use its linear parts "
            "(e.g. sobel-x and sobel-y)",
        )
    return (parsed.flipped() if flip else parsed).weights


def _constant_term(border_value, border, mode: str, return_offset: bool) -> float:
    """The outside's value (0 but for constant); a non-zero one makes the filter affine."""
    cval = checked_border_value(border_value, border) if mode == "constant" else 0.0
    if mode == "constant" and cval != 0.0 and not return_offset:
        raise OptionError(
            "--border-value",
            f"with --border constant and --border-value {cval:g} the filter "
            "is affine (M @ x + c), not linear; use --border-value 0 "
            "(or return_offset=True for the constant term c)",
        )
    return cval


def _folded_matrix(weights: np.ndarray, shape, y_axis, x_axis, max_nnz: int):
    """The CSR matrix from the taps' rows and columns per output row/column (``_axis``) with the
    weights folded where a border maps several taps onto one pixel."""
    import scipy.sparse as sp

    h, w = shape
    kh, kw = weights.shape
    (iy, fy), (ix, fx) = y_axis, x_axis
    ho, wo = iy.shape[0], ix.shape[0]
    # Every output pixel gets kh*kw slots: its distinct rows x distinct columns first, in increasing
    # column order, then unused slots (weight 0), pruned at the end by eliminate_zeros.
    slots = kh * kw
    total = ho * wo * slots
    if total > max_nnz:
        raise OptionError(
            "--shape", f"the matrix would hold up to {total} entries (at most {max_nnz}); use a smaller shape or kernel"
        )
    index_dtype = np.int32 if max(total, h * w) < (1 << 31) else np.int64
    indptr = np.arange(0, total + 1, slots, dtype=index_dtype)
    indices = np.empty(total, dtype=index_dtype)
    data = np.empty(total, dtype=np.float64)
    indices4 = indices.reshape(ho, wo, kh, kw)
    data4 = data.reshape(ho, wo, kh, kw)

    col_y = (iy * w).astype(index_dtype)  # (ho, kh)
    col_x = ix.astype(index_dtype)  # (wo, kw)
    fx_t = fx.reshape(wo * kw, kw).T  # (kw taps, wo*kw slots)
    rows_per_chunk = max(1, _CHUNK // (wo * slots))
    for y0 in range(0, ho, rows_per_chunk):
        y1 = min(ho, y0 + rows_per_chunk)
        n = y1 - y0
        # folded weights [oy, ox, a, b] = sum_ij fy[oy, a, i] * w[i, j] * fx[ox, b, j]
        t = (fy[y0:y1] @ weights).reshape(n * kh, kw)
        data4[y0:y1] = (t @ fx_t).reshape(n, kh, wo, kw).transpose(0, 2, 1, 3)
        np.add(col_y[y0:y1, None, :, None], col_x[None, :, None, :], out=indices4[y0:y1])

    m = sp.csr_array((data, indices, indptr), shape=(ho * wo, h * w), copy=False)
    m.eliminate_zeros()  # unused slots, zero weights and taps that cancelled
    m.has_sorted_indices = True
    return m


# --------------------------------------------------------------------------- #
# Text, files and the --shape option
# --------------------------------------------------------------------------- #


def format_matrix(m, shape, max_size: int = MAX_PRINT) -> str:
    """The dense matrix as text: a ``#`` header line, then one line per row, columns aligned.

    No trailing newline (``click.echo``/``print`` add one).

    Numbers are ``%g`` (6 significant digits), right-aligned to a common width.  Matrices with
    more than ``max_size`` columns (input pixels) or ``4*max_size`` rows are refused with
    ``OptionError("--shape", ...)``, pointing to ``--output FILE.npz``.
    """
    h, w = _checked_shape(shape)
    rows, cols = m.shape
    if cols > max_size or rows > 4 * max_size:
        raise OptionError(
            "--shape",
            f"shape too large to print ({rows}x{cols} matrix; at most "
            f"{4 * max_size} rows and {max_size} columns); use --output FILE.npz",
        )
    dense = m.toarray() if hasattr(m, "toarray") else np.asarray(m, dtype=np.float64)
    dense = dense + 0.0  # -0.0 prints as 0
    cells = [[f"{v:g}" for v in row] for row in dense]
    width = max((len(c) for row in cells for c in row), default=1)
    lines = [
        f"# {rows}x{cols} convolution matrix: row oy*Wo+ox per output pixel, "
        f"column y*{w}+x per pixel of the {h}x{w} input"
    ]
    lines += ["  ".join(c.rjust(width) for c in row) for row in cells]
    return "\n".join(lines)


def save_matrix(path, m) -> None:
    """``scipy.sparse.save_npz`` to exactly ``path``, atomically (temporary file + rename).

    Any failure is ``OutputError(path, cause)`` and leaves neither ``path`` changed nor a
    temporary file behind.
    """
    import scipy.sparse as sp

    path = os.fspath(path)
    from clconv.atomic import write_atomically

    write_atomically(path, lambda fo: sp.save_npz(fo, sp.csr_array(m), compressed=True))


_SHAPE_RE = re.compile(r"\s*(\d+)\s*(?:[xX×]\s*(\d+)\s*)?", re.ASCII)


def parse_shape(text) -> tuple[int, int]:
    """``"HxW"`` -> ``(H, W)``; a single ``"N"`` is one row, ``(1, N)``.  Sides 1 and up, else OptionError."""
    m = _SHAPE_RE.fullmatch(str(text))
    if not m:
        raise OptionError("--shape", f"expected HxW (e.g. 3x3) or N (one row), got {text!r}")
    h, w = (1, int(m.group(1))) if m.group(2) is None else (int(m.group(1)), int(m.group(2)))
    if not (1 <= h <= _MAX_SIDE and 1 <= w <= _MAX_SIDE):
        raise OptionError("--shape", f"height and width must be 1 to {_MAX_SIDE}, got {text!r}")
    return h, w
