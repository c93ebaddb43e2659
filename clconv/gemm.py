"""Tiled OpenCL SGEMM (cl/gemm.cl): C = A @ B in float32 for any M x K x N.

Two layers, as everywhere in clconv:

- ``gemm_device(rt, a_buf, bp_buf, c_buf, m, n, k, c_offset)`` works on device
  buffers and only enqueues. A is row-major; B comes packed as panels of
  ``PANEL`` columns, ``(panel_count(n), k, PANEL)``, so that each work-item reads
  its panel as one contiguous stream. An im2col kernel can write B in that
  layout directly.
- ``matmul(a, b)`` is the numpy-in, numpy-out form: it packs B on the host
  (``pack_b``), hands A, packed B and a new C to the device (``Runtime.wrap``: in
  place on a CPU device), runs ``gemm_device`` and reads C back.

Each work-item computes an 8 x 16 block of C from 8 rows of A and one panel, in
registers. The launch uses one fixed local size (``LOCAL``): PoCL compiles one
work-group function per local size, so a size chosen per shape would recompile.
"""

from __future__ import annotations

import numpy as np

from clconv.errors import OptionError

CL_FILE = "gemm.cl"
KERNEL = "gemm_panels"
PANEL = 16  # B is stored as panels of 16 columns (one float16 per row of a panel)
ROWS = 8  # rows of C per work-item (GEMM_MR in cl/gemm.cl)
LOCAL = 64  # work-items per work-group (16..128 measured equal: the kernel's band order sets locality)
_INT_MAX = 2**31 - 1


def panel_count(n: int) -> int:
    """Number of 16-column panels that hold ``n`` columns."""
    return -(-int(n) // PANEL)


def pack_b(b: np.ndarray) -> np.ndarray:
    """(K, N) -> (panel_count(N), K, PANEL) float32; the columns past N are zero."""
    b = np.asarray(b)
    if b.ndim != 2:
        raise OptionError("matmul", f"B must be a 2-D matrix, got shape {b.shape}")
    k, n = b.shape
    full = n // PANEL
    packed = np.empty((panel_count(n), k, PANEL), dtype=np.float32)
    if full:
        packed[:full] = b[:, : full * PANEL].reshape(k, full, PANEL).transpose(1, 0, 2)
    rest = n - full * PANEL
    if rest:
        packed[full, :, :rest] = b[:, full * PANEL :]
        packed[full, :, rest:] = 0.0
    return packed


def gemm_device(rt, a_buf, bp_buf, c_buf, m: int, n: int, k: int, c_offset: int = 0) -> None:
    """Enqueue C = A @ B on ``rt.queue``; no host synchronisation.

    ``a_buf``: A (m x k, row-major, float32). ``bp_buf``: B packed as
    ``(panel_count(n), k, PANEL)``. ``c_buf``: C (m x n, row-major, leading
    dimension n), written from ``c_offset`` floats on; nothing outside those
    m * n floats is touched. With k == 0, C is set to zero.
    """
    m, n, k, c_offset = int(m), int(n), int(k), int(c_offset)
    if min(m, n, k, c_offset) < 0:
        raise OptionError("matmul", f"negative size or offset (m={m}, n={n}, k={k}, c_offset={c_offset})")
    if m == 0 or n == 0:
        return
    items = -(-m // ROWS) * panel_count(n)
    if max(m, n, k) > _INT_MAX or items > _INT_MAX - LOCAL:
        raise OptionError("matmul", f"{m} x {k} x {n} is too large for one launch")
    rt.launch(
        CL_FILE,
        KERNEL,
        (items,),
        a_buf,
        bp_buf,
        c_buf,
        np.int64(c_offset),
        np.int32(m),
        np.int32(n),
        np.int32(k),
        local=(LOCAL,),
    )


def _as_matrix(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise OptionError("matmul", f"{name} must be a 2-D matrix, got shape {x.shape}")
    if x.dtype.kind not in "fiub":  # float, signed, unsigned, bool; not complex or object
        raise OptionError("matmul", f"{name} must hold real numbers, got dtype {x.dtype}")
    return x


def matmul(a, b, device=None) -> np.ndarray:
    """``a @ b`` in float32 on an OpenCL device (numpy in, numpy out).

    Inputs are converted to float32; both must be 2-D with ``a.shape[1] ==
    b.shape[0]``, else ``OptionError``. ``device`` is a device spec or a Runtime
    (see ``clconv.runtime.get_runtime``). Returns a new (M, N) float32 array.
    """
    a = _as_matrix(a, "A")
    b = _as_matrix(b, "B")
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise OptionError("matmul", f"shapes {a.shape} and {b.shape} do not align ({k} != {k2})")
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n), dtype=np.float32)

    from clconv.runtime import get_runtime  # keeps `import clconv.gemm` free of OpenCL

    rt = get_runtime(device)
    a32 = np.ascontiguousarray(a, dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    # rt.wrap: on a CPU device (host memory shared) the kernel reads A and B and writes C in
    # place, 2x faster end to end at 2048^3 than copy in + copy out; a discrete GPU gets copies.
    a_buf, bp_buf = rt.wrap(a32), rt.wrap(pack_b(b))  # held until read_back (see Runtime.wrap)
    c_buf = rt.wrap(c, writable=True)  # gemm_device writes all of C
    gemm_device(rt, a_buf, bp_buf, c_buf, m, n, k)
    rt.read_back(c_buf, c)
    return c
