"""Kernel specs: named kernels, inline matrices, ImageMagick's ``WxH:`` form, files, arrays.

Every kernel is held as *correlation weights as written* (SPEC "Semantics"): the
weight ``w[i, j]`` multiplies ``in[y + i - h//2, x + j - w//2]``, exactly
``scipy.ndimage.correlate``.  ``Linear.flipped()`` gives the weights for ``--flip``.

A spec string is classified in this order (see ``parse_spec``):

1. it ends in ``.txt``, ``.csv`` or ``.npy`` (any case): a kernel file;
2. it matches ImageMagick's ``WxH: v,v,...`` (or ``N: ...``, a square): that form;
3. every token between ``;``, ``,``, whitespace and newlines is a number
   (``nan``/``inf`` included, so they get the "finite" error): an inline matrix;
4. it starts with a digit, sign or dot, or holds a ``;``: a malformed matrix
   (the error names the bad token);
5. otherwise a kernel name, ``NAME`` or ``NAME:key=value[,key=value]``.

So ``"1"`` is a 1x1 matrix, ``"3x1: 1,0,-1"`` is 1 row of 3, ``"1,2,1"`` is one
row of 3 (unlike ImageMagick, which would want a square), ``"sobel-x"`` a name.

This module needs numpy only and imports nothing heavy (no scipy, no pyopencl).
"""
from __future__ import annotations

import hashlib
import os
import re
import functools
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

from clconv.errors import KernelSpecError

__all__ = [
    "MAX_TAPS",
    "Linear",
    "Magnitude",
    "Kernel",
    "NAMED",
    "parse_spec",
    "kernel_names",
    "describe",
    "summary_lines",
    "file_safe",
]

MAX_TAPS = 1025  # each side of a kernel has 1..MAX_TAPS taps (SPEC "Kernels")

# Kernel files are data: refuse anything larger before reading it.  A full
# 1025x1025 text kernel with 20-character numbers is about 21 MB.
_MAX_FILE_BYTES = 64 * 1024 * 1024

_FILE_SUFFIXES = (".txt", ".csv", ".npy")


# --------------------------------------------------------------------------- #
# Kernel types
# --------------------------------------------------------------------------- #


def _frozen_array(a, ndim: int) -> np.ndarray:
    """A private float64 C-contiguous read-only copy of ``a``."""
    out = np.array(a, dtype=np.float64, order="C", copy=True)
    if out.ndim != ndim:
        raise ValueError(f"expected a {ndim}D array, got shape {out.shape}")
    out.setflags(write=False)
    return out


# Low-rank detection. A kernel K runs as r separable terms (sum of np.outer(column_t, row_t))
# when the best rank-r approximation K_r (truncated SVD, float64) satisfies
#     sum|K - K_r| <= LOW_RANK_EPS(taps) * sum|K|,   LOW_RANK_EPS(n) = min(n, 64) * 2**-24.
# Why this bound: the change it makes to any output value is at most sum|K - K_r| * max|x|,
# and the float32 evaluation of the same n-tap sum (which every algorithm does) already has the
# a priori rounding bound of about n * 2**-24 * sum|K| * max|x| (Higham's gamma_n). So the
# approximation is never larger than float32's own rounding bound for that kernel; the cap at 64
# keeps it under 4e-6 of sum|K| for large kernels, far inside SPEC's 1e-4. A Gaussian built in
# float32 (np.outer(g, g).astype(np.float32), or normalised in float32) is rank 1 at this bound;
# a kernel whose weights were rounded to a few decimals is not (its rounding noise is full rank,
# about 1e-7 to 1e-5 of sum|K|), and runs dense, exactly as written.
UNIT_ROUNDOFF = 2.0**-24
MAX_TERMS = 4  # beyond this many separable terms a pass per term no longer pays on the sizes that matter


def low_rank_eps(taps: int) -> float:
    """The relative l1 bound a low-rank approximation of a kernel of ``taps`` weights must meet."""
    return min(taps, 64) * UNIT_ROUNDOFF


@dataclass(frozen=True, eq=False)
class Linear:
    """One linear filter: correlation weights as written, plus output-mapping defaults.

    ``bias`` is a fraction of ``max + 1`` of the integer output range (emboss:
    0.5 -> 128 for 8-bit, 32768 for 16-bit).  ``factors`` is ``(column, row)``
    with ``np.outer(column, row) == weights`` for the separable named kernels,
    else None.  Construction validates and freezes the arrays; bad weights
    raise ``KernelSpecError(spec, ...)``.
    """

    spec: str
    weights: np.ndarray = field(repr=False)
    abs: bool = False
    bias: float = 0.0
    factors: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "spec", str(self.spec))
        w = _frozen_array(_checked_weights(self.weights, self.spec), 2)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "abs", bool(self.abs))
        object.__setattr__(self, "bias", float(self.bias))
        if self.factors is not None:
            col, row = self.factors
            col, row = _frozen_array(col, 1), _frozen_array(row, 1)
            if (col.size, row.size) != w.shape:
                raise ValueError(f"factors {col.size}x{row.size} do not match weights {w.shape}")
            scale = max(float(np.max(np.abs(w))), 1e-300)
            if float(np.max(np.abs(np.outer(col, row) - w))) > 1e-12 * scale:
                raise ValueError("np.outer(*factors) differs from the weights")
            object.__setattr__(self, "factors", (col, row))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.weights.shape[0]), int(self.weights.shape[1]))

    @property
    def nonnegative(self) -> bool:
        """All weights >= 0: colour is alpha-weighted under ``--alpha keep``."""
        return bool(np.all(self.weights >= 0))

    @property
    def parts(self) -> tuple["Linear", ...]:
        """The linear filters this kernel is made of: itself."""
        return (self,)

    def separable_factors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(column, row)`` with ``np.outer(column, row)`` equal to the weights within
        ``low_rank_eps`` (exactly, for named kernels, which carry their factors), or None
        when the kernel's rank is above 1."""
        terms = self.separable_terms()
        return terms[0] if terms is not None and len(terms) == 1 else None

    def separable_terms(self) -> tuple[tuple[np.ndarray, np.ndarray], ...] | None:
        """The fewest ``(column, row)`` pairs (at most MAX_TERMS) whose outer products sum to
        the weights within ``low_rank_eps`` (see there), or None when more are needed."""
        return (self.factors,) if self.factors is not None else self._svd_terms

    @property
    def rank(self) -> int | None:
        """Separable terms the kernel runs as (1 for rank 1), or None above MAX_TERMS."""
        terms = self.separable_terms()
        return None if terms is None else len(terms)

    @functools.cached_property
    def _svd_terms(self) -> tuple[tuple[np.ndarray, np.ndarray], ...] | None:
        w = self.weights
        if w.shape[0] == 1:
            return ((np.ones(1), w[0].copy()),)
        if w.shape[1] == 1:
            return ((w[:, 0].copy(), np.ones(1)),)
        u, s, vt = np.linalg.svd(w)
        budget = low_rank_eps(w.size) * float(np.abs(w).sum())
        approx = np.zeros_like(w)
        terms = []
        for t in range(min(MAX_TERMS, len(s))):
            if s[t] == 0.0 and terms:
                break
            root = np.sqrt(s[t])
            column, row = u[:, t] * root, vt[t] * root
            terms.append((column, row))
            approx += np.outer(column, row)
            if float(np.abs(w - approx).sum()) <= budget:
                return tuple(terms)
        return None

    def flipped(self) -> "Linear":
        """The weights rotated 180 degrees (``--flip``), same spec and defaults."""
        factors = None
        if self.factors is not None:
            factors = (self.factors[0][::-1], self.factors[1][::-1])
        return Linear(self.spec, self.weights[::-1, ::-1], self.abs, self.bias, factors)


@dataclass(frozen=True, eq=False)
class Magnitude:
    """Gradient magnitude ``sqrt(gx**2 + gy**2)`` of two linear filters (``sobel``)."""

    spec: str
    gx: Linear
    gy: Linear
    abs: bool = False
    bias: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        """The larger extent of the two parts (both are 3x3 for ``sobel``)."""
        return (max(self.gx.shape[0], self.gy.shape[0]), max(self.gx.shape[1], self.gy.shape[1]))

    @property
    def nonnegative(self) -> bool:
        return self.gx.nonnegative and self.gy.nonnegative

    @property
    def parts(self) -> tuple[Linear, Linear]:
        """The linear filters this kernel is made of: gx and gy."""
        return (self.gx, self.gy)

    def flipped(self) -> "Magnitude":
        return Magnitude(self.spec, self.gx.flipped(), self.gy.flipped(), self.abs, self.bias)


Kernel = Union[Linear, Magnitude]


# --------------------------------------------------------------------------- #
# Validation shared by every source
# --------------------------------------------------------------------------- #


def _checked_side(n: int, what: str, subject) -> None:
    if n < 1 or n > MAX_TAPS:
        raise KernelSpecError(subject, f"kernel {what} is {n} taps; each side must have 1 to {MAX_TAPS} taps")


def _checked_weights(weights, subject) -> np.ndarray:
    """2D float64 weights, or KernelSpecError(subject, cause)."""
    a = np.asarray(weights)
    if a.dtype.kind not in "biuf":
        raise KernelSpecError(subject, f"weights must be real numbers, not {a.dtype}")
    if a.ndim != 2:
        raise KernelSpecError(subject, f"weights must be a 2D matrix, got {a.ndim}D")
    if a.size == 0:
        raise KernelSpecError(subject, "kernel is empty")
    _checked_side(a.shape[0], "height", subject)
    _checked_side(a.shape[1], "width", subject)
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        raise KernelSpecError(subject, "weights must be finite numbers")
    return a


# --------------------------------------------------------------------------- #
# Named kernels
# --------------------------------------------------------------------------- #

# Separable building blocks, in the style of scikit-image's filters/edges.py.
# ``np.outer(column, row)`` gives the correlation weights as written.
# Sobel (1968): smoothing [1 2 1] across the derivative [-1 0 1].
SOBEL_SMOOTH = np.array([1.0, 2.0, 1.0])
# Central difference, increasing to the right / downwards (correlation sign).
DERIV = np.array([-1.0, 0.0, 1.0])
# Prewitt (1970): plain averaging across the derivative.
PREWITT_SMOOTH = np.array([1.0, 1.0, 1.0])
# Scharr (2000): rotation-optimised smoothing.
SCHARR_SMOOTH = np.array([3.0, 10.0, 3.0])
# 1 at the centre of 3 taps.
DELTA3 = np.array([0.0, 1.0, 0.0])

# Non-separable 3x3 kernels, as SPEC's table writes them.
SHARPEN = np.array([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])
LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])  # negative centre, as OpenCV/scipy
EDGE = np.array([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]])
EMBOSS = np.array([[-2.0, -1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, 1.0, 2.0]])  # sums to 0


def _canonical(name: str, params: dict) -> str:
    if not params:
        return name
    return name + ":" + ",".join(f"{k}={v}" for k, v in params.items())


def _number(key: str, value, subject) -> float:
    """A finite float from a factory argument (number or the text after ``key=``)."""
    if isinstance(value, (bool, np.bool_)):
        raise KernelSpecError(subject, f"{key} must be a number, not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_RE.fullmatch(text):
            raise KernelSpecError(subject, f"{key} must be a number, not {value!r}")
        value = float(text)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise KernelSpecError(subject, f"{key} must be a number, not {value!r}") from None
    if not np.isfinite(x):
        raise KernelSpecError(subject, f"{key} must be a finite number, not {value!r}")
    return x


def _positive(key: str, value, subject) -> float:
    x = _number(key, value, subject)
    if x <= 0:
        raise KernelSpecError(subject, f"{key} must be > 0, not {value!r}")
    return x


def _size(key: str, value, subject) -> int:
    x = _number(key, value, subject)
    if not float(x).is_integer():
        raise KernelSpecError(subject, f"{key} must be an integer, not {value!r}")
    if x < 1 or x > MAX_TAPS:
        raise KernelSpecError(subject, f"{key} must be 1 to {MAX_TAPS} taps, not {value!r}")
    return int(x)


def _gaussian_1d(sigma: float, truncate: float, size, subject) -> np.ndarray:
    """scipy.ndimage's 1D gaussian weights (``_gaussian_kernel1d``, order 0).

    Default size ``2*int(truncate*sigma + 0.5) + 1`` as scipy's radius.  An
    explicit odd size ``2r+1`` is scipy's ``radius=r``.  An explicit EVEN size
    samples the gaussian symmetrically at half-integer offsets
    ``x = arange(size) - (size-1)/2`` (so the weights are symmetric and sum to
    1); as for every even kernel the anchor is ``size//2``, so the result is
    shifted half a pixel towards the top-left compared with a centred blur.
    """
    if size is None:
        radius = truncate * sigma + 0.5
        if not np.isfinite(radius) or 2 * int(radius) + 1 > MAX_TAPS:
            if not np.isfinite(radius):
                need = "too many"
            else:
                need = str(2 * int(radius) + 1) if radius < 1e9 else f"about {2 * radius:.3g}"
            raise KernelSpecError(
                subject,
                f"gaussian needs {need} taps at sigma={sigma:g}, truncate={truncate:g}; "
                f"at most {MAX_TAPS} (lower sigma or truncate, or give size)",
            )
        size = 2 * int(radius) + 1
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    x2 = x * x
    x2 = x2 - x2.min()  # 0 for odd sizes (bit-identical to scipy); keeps even sizes from underflowing to 0/0
    coef = -0.5 / (sigma * sigma) if sigma * sigma > 0 else -np.inf
    if np.isfinite(coef):
        phi = np.exp(coef * x2)
    else:  # sigma so small that sigma**2 underflows: only the nearest taps survive
        phi = np.where(x2 == 0, 1.0, 0.0)
    return phi / phi.sum()


def _identity() -> Linear:
    return Linear("identity", np.outer(DELTA3, DELTA3), factors=(DELTA3, DELTA3))


def _box(*, size=3) -> Linear:
    spec = _canonical("box", {} if size == 3 else {"size": size})
    n = _size("size", size, spec)
    one = np.full(n, 1.0 / n)
    # Built as the outer product so that np.outer(*factors) == weights exactly;
    # (1/n)*(1/n) is within 1 ulp of the table's 1/size^2.
    return Linear(spec, np.outer(one, one), factors=(one, one))


def _gaussian_params(name, sigma, truncate, size, extra=None):
    given = {}
    if sigma != 1.0:
        given["sigma"] = sigma
    if extra:
        given.update(extra)
    if truncate != 4.0:
        given["truncate"] = truncate
    if size is not None:
        given["size"] = size
    spec = _canonical(name, given)
    s = _positive("sigma", sigma, spec)
    t = _positive("truncate", truncate, spec)
    n = None if size is None else _size("size", size, spec)
    return spec, s, t, n


def _gaussian(*, sigma=1.0, truncate=4.0, size=None, _name="gaussian") -> Linear:
    spec, s, t, n = _gaussian_params(_name, sigma, truncate, size)
    g = _gaussian_1d(s, t, n, spec)
    # 2D weights = outer product of the normalised 1D weights, as
    # scipy.ndimage.gaussian_filter applies them (one axis after the other).
    return Linear(spec, np.outer(g, g), factors=(g, g))


def _blur(*, sigma=1.0, truncate=4.0, size=None) -> Linear:
    return _gaussian(sigma=sigma, truncate=truncate, size=size, _name="blur")


def _sharpen() -> Linear:
    return Linear("sharpen", SHARPEN)


def _unsharp(*, sigma=1.0, amount=1.0, truncate=4.0, size=None) -> Linear:
    spec, s, t, n = _gaussian_params("unsharp", sigma, truncate, size, {"amount": amount} if amount != 1.0 else None)
    a = _number("amount", amount, spec)
    g = _gaussian_1d(s, t, n, spec)
    gauss = np.outer(g, g)
    ident = np.zeros_like(gauss)
    ident[gauss.shape[0] // 2, gauss.shape[1] // 2] = 1.0  # the anchor
    return Linear(spec, ident + a * (ident - gauss))


def _sobel_x() -> Linear:
    return Linear("sobel-x", np.outer(SOBEL_SMOOTH, DERIV), abs=True, factors=(SOBEL_SMOOTH, DERIV))


def _sobel_y() -> Linear:
    return Linear("sobel-y", np.outer(DERIV, SOBEL_SMOOTH), abs=True, factors=(DERIV, SOBEL_SMOOTH))


def _sobel() -> Magnitude:
    return Magnitude("sobel", _sobel_x(), _sobel_y())


def _prewitt_x() -> Linear:
    return Linear("prewitt-x", np.outer(PREWITT_SMOOTH, DERIV), abs=True, factors=(PREWITT_SMOOTH, DERIV))


def _prewitt_y() -> Linear:
    return Linear("prewitt-y", np.outer(DERIV, PREWITT_SMOOTH), abs=True, factors=(DERIV, PREWITT_SMOOTH))


def _scharr_x() -> Linear:
    return Linear("scharr-x", np.outer(SCHARR_SMOOTH, DERIV), abs=True, factors=(SCHARR_SMOOTH, DERIV))


def _scharr_y() -> Linear:
    return Linear("scharr-y", np.outer(DERIV, SCHARR_SMOOTH), abs=True, factors=(DERIV, SCHARR_SMOOTH))


def _laplacian() -> Linear:
    return Linear("laplacian", LAPLACIAN, abs=True)


def _edge() -> Linear:
    return Linear("edge", EDGE, abs=True)


def _emboss() -> Linear:
    return Linear("emboss", EMBOSS, bias=0.5)


@dataclass(frozen=True)
class _Entry:
    make: Callable[..., Kernel]
    params: tuple[tuple[str, str], ...]  # (name, default as text)
    summary: str


_GAUSS_SIZE = "2*int(truncate*sigma+0.5)+1"

_ENTRIES: dict[str, _Entry] = {
    "identity": _Entry(_identity, (), "1 at the centre of a 3x3 (copies the image)"),
    "box": _Entry(_box, (("size", "3"),), "mean of a size x size square, all 1/size^2"),
    "gaussian": _Entry(
        _gaussian,
        (("sigma", "1.0"), ("truncate", "4.0"), ("size", _GAUSS_SIZE)),
        "Gaussian blur, sum 1 (scipy.ndimage.gaussian_filter's weights)",
    ),
    "blur": _Entry(
        _blur,
        (("sigma", "1.0"), ("truncate", "4.0"), ("size", _GAUSS_SIZE)),
        "alias of gaussian",
    ),
    "sharpen": _Entry(_sharpen, (), "0 -1 0; -1 5 -1; 0 -1 0"),
    "unsharp": _Entry(
        _unsharp,
        (("sigma", "1.0"), ("amount", "1.0"), ("truncate", "4.0"), ("size", _GAUSS_SIZE)),
        "unsharp mask: identity + amount*(identity - gaussian)",
    ),
    "sobel-x": _Entry(_sobel_x, (), "Sobel x derivative [1 2 1]^T [-1 0 1]; abs"),
    "sobel-y": _Entry(_sobel_y, (), "Sobel y derivative [-1 0 1]^T [1 2 1]; abs"),
    "sobel": _Entry(_sobel, (), "Sobel gradient magnitude sqrt(gx^2 + gy^2), unscaled"),
    "prewitt-x": _Entry(_prewitt_x, (), "Prewitt x derivative, -1 0 1 in every row; abs"),
    "prewitt-y": _Entry(_prewitt_y, (), "Prewitt y derivative, transpose of prewitt-x; abs"),
    "scharr-x": _Entry(_scharr_x, (), "Scharr x derivative [3 10 3]^T [-1 0 1]; abs"),
    "scharr-y": _Entry(_scharr_y, (), "Scharr y derivative, transpose of scharr-x; abs"),
    "laplacian": _Entry(_laplacian, (), "0 1 0; 1 -4 1; 0 1 0 (negative centre); abs"),
    "edge": _Entry(_edge, (), "-1 -1 -1; -1 8 -1; -1 -1 -1; abs"),
    "emboss": _Entry(_emboss, (), "-2 -1 0; -1 0 1; 0 1 2; bias half the range"),
}

#: Factories of the named kernels, keyword parameters as in SPEC (numbers or
#: their text).  ``NAMED["gaussian"](sigma=2)``.
NAMED: dict[str, Callable[..., Kernel]] = {name: e.make for name, e in _ENTRIES.items()}


def kernel_names() -> list[str]:
    """Sorted names for ``clconv kernels``."""
    return sorted(_ENTRIES)


# --------------------------------------------------------------------------- #
# Parsing
# --------------------------------------------------------------------------- #

_NUMBER_RE = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)",
    re.IGNORECASE,
)
_IM_RE = re.compile(r"\s*(\d+)(?:\s*[xX]\s*(\d+))?\s*([+-]\d+[+-]\d+)?\s*:(.*)", re.DOTALL)
_TOKEN_SPLIT = re.compile(r"[\s,;]+")


def _row_tokens(row: str, subject, where: str) -> list[str]:
    """Values of one row separated by whitespace and/or commas; one trailing comma tolerated."""
    tokens = [t for t in re.split(r"\s*,\s*|\s+", row.strip())]
    if tokens and tokens[-1] == "":
        tokens.pop()
    for t in tokens:
        if t == "":
            raise KernelSpecError(subject, f"empty value in {where}")
    return tokens


def _to_float(token: str, subject, where: str) -> float:
    if not _NUMBER_RE.fullmatch(token):
        raise KernelSpecError(subject, f"not a number: {token!r} in {where}")
    return float(token)


def _ragged(i: int, n: int, width: int) -> str:
    def values(k):
        return f"{k} value" if k == 1 else f"{k} values"

    return f"ragged rows: row {i} has {values(n)}, row 1 has {values(width)}"


def _rows_to_array(rows: list[list[str]], subject) -> np.ndarray:
    if not rows:
        raise KernelSpecError(subject, "kernel is empty")
    values = [[_to_float(t, subject, f"row {i}") for t in r] for i, r in enumerate(rows, start=1)]
    return _rectangular(values, subject)


def _rectangular(values: list[list[float]], subject) -> np.ndarray:
    """Rows of numbers as a 2D array: every side 1..MAX_TAPS, no ragged rows."""
    _checked_side(len(values), "height", subject)
    width = len(values[0])
    _checked_side(width, "width", subject)
    for i, r in enumerate(values[1:], start=2):
        if len(r) != width:
            raise KernelSpecError(subject, _ragged(i, len(r), width))
    return np.array(values, dtype=np.float64)


def _parse_matrix(text: str, subject) -> np.ndarray:
    """Inline matrix: rows by ``;`` or newline (blank rows ignored), values by spaces/commas."""
    rows = []
    for raw in re.split(r"[;\n]", text):
        if raw.strip():
            rows.append(_row_tokens(raw, subject, f"row {len(rows) + 1}"))
    return _rows_to_array(rows, subject)


def _parse_im(m: re.Match, subject) -> np.ndarray:
    w = int(m.group(1))
    h = int(m.group(2)) if m.group(2) is not None else w
    if m.group(3):
        raise KernelSpecError(
            subject,
            f"ImageMagick kernel offsets ({m.group(3)}) are not supported; "
            "the anchor is always (height//2, width//2)",
        )
    _checked_side(w, "width", subject)
    _checked_side(h, "height", subject)
    tokens = [t for t in _TOKEN_SPLIT.split(m.group(4).strip()) if t]
    if ";" in m.group(4):
        raise KernelSpecError(subject, "the WxH: form takes values separated by commas or spaces, not ';'")
    if len(tokens) != w * h:
        raise KernelSpecError(subject, f"a {w}x{h} kernel needs {w * h} values, got {len(tokens)}")
    vals = [_to_float(t, subject, "the values") for t in tokens]
    return np.array(vals, dtype=np.float64).reshape(h, w)


def _file_error(path: str, exc: OSError) -> KernelSpecError:
    cause = (exc.strerror or str(exc) or type(exc).__name__).lower()
    return KernelSpecError(path, f"cannot read kernel file: {cause}")


def _read_text_file(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > _MAX_FILE_BYTES:
                raise KernelSpecError(path, f"kernel file is larger than {_MAX_FILE_BYTES // 2**20} MiB")
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _file_error(path, exc) from None
    if len(data) > _MAX_FILE_BYTES:
        raise KernelSpecError(path, f"kernel file is larger than {_MAX_FILE_BYTES // 2**20} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise KernelSpecError(path, "not a text kernel file (not UTF-8 text)") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0]  # '#' starts a comment (whole-line or trailing)
        if not line.strip():
            continue
        if ";" in line:
            raise KernelSpecError(path, f"line {lineno}: separate values by spaces or commas, not ';'")
        tokens = _row_tokens(line, path, f"line {lineno}")
        rows.append([_to_float(t, path, f"line {lineno}") for t in tokens])
    if not rows:
        raise KernelSpecError(path, "kernel file holds no numbers")
    return _rectangular(rows, path)


def _read_npy(path: str) -> np.ndarray:
    """A numeric 0-2D .npy, header checked before the data is read; never unpickles."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            try:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, _fortran, dtype = fmt.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _fortran, dtype = fmt.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except (ValueError, EOFError, SyntaxError, TypeError) as exc:
                raise KernelSpecError(path, "not a valid .npy file") from exc
            if dtype.hasobject:
                raise KernelSpecError(path, "object (pickled) .npy arrays are refused")
            if dtype.kind not in "biuf" or dtype.fields is not None:
                raise KernelSpecError(path, f"weights must be real numbers, not {dtype}")
            if len(shape) > 2:
                raise KernelSpecError(path, f"kernel .npy must be 1D or 2D, got {len(shape)}D")
            shape2 = (1,) * (2 - len(shape)) + tuple(shape)  # 0D -> 1x1, 1D -> one row
            if 0 in shape2:
                raise KernelSpecError(path, "kernel is empty")
            _checked_side(shape2[0], "height", path)
            _checked_side(shape2[1], "width", path)
            f.seek(0)
            try:
                a = np.load(f, allow_pickle=False)
            except (ValueError, EOFError, OSError) as exc:
                raise KernelSpecError(path, "truncated or damaged .npy file") from exc
    except OSError as exc:
        raise _file_error(path, exc) from None
    return np.asarray(a).reshape(shape2)


def _read_file(path: str) -> np.ndarray:
    if path.lower().endswith(".npy"):
        return _read_npy(path)
    return _read_text_file(path)


def _from_array(a, subject: str = "array") -> Linear:
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise KernelSpecError(subject, f"not a numeric matrix ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise KernelSpecError(subject, f"weights must be real numbers, not {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    elif arr.ndim != 2:
        raise KernelSpecError(subject, f"kernel array must be 1D or 2D, got {arr.ndim}D")
    return Linear(subject, arr)


def _parse_named(text: str) -> Kernel:
    name, _, rest = text.partition(":")
    key = name.strip().lower()
    entry = _ENTRIES.get(key)
    if entry is None:
        cause = f"unknown kernel name {name.strip()!r} (see clconv kernels)"
        import difflib  # only on this error path

        close = difflib.get_close_matches(key, kernel_names(), n=1, cutoff=0.6)
        if close:
            cause += f"; did you mean {close[0]!r}?"
        raise KernelSpecError(text, cause)
    allowed = [p for p, _ in entry.params]
    params: dict[str, str] = {}
    if rest.strip():
        if not allowed:
            raise KernelSpecError(text, f"kernel {key!r} takes no parameters")
        for item in rest.split(","):
            if not item.strip():
                continue
            k, eq, v = item.partition("=")
            k = k.strip().lower()
            if not eq:
                raise KernelSpecError(text, f"parameter {item.strip()!r} is not key=value")
            if k not in allowed:
                raise KernelSpecError(
                    text, f"unknown parameter {k!r} for {key!r} (takes {', '.join(allowed)})"
                )
            if k in params:
                raise KernelSpecError(text, f"parameter {k!r} given twice")
            if not v.strip():
                raise KernelSpecError(text, f"parameter {k!r} has no value")
            params[k] = v.strip()
    try:
        kernel = entry.make(**params)
    except KernelSpecError as exc:  # re-address the error to the user's own text
        raise KernelSpecError(text, exc.cause) from None
    return _respec(kernel, text)


def _respec(kernel: Kernel, spec: str) -> Kernel:
    if isinstance(kernel, Magnitude):
        return Magnitude(spec, kernel.gx, kernel.gy, kernel.abs, kernel.bias)
    return Linear(spec, kernel.weights, kernel.abs, kernel.bias, kernel.factors)


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or bool(re.search(r"\.[A-Za-z][A-Za-z0-9]{0,4}$", text))


def parse_spec(spec) -> Kernel:
    """A kernel from a spec string, a 1D/2D numeric array, a path, or a kernel (returned as is).

    Every failure is ``KernelSpecError(subject, cause)`` with subject the
    spec text (stripped), the file path, or ``"array"``.
    """
    if isinstance(spec, (Linear, Magnitude)):
        return spec
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
        if isinstance(spec, bytes):
            spec = os.fsdecode(spec)
        return Linear(spec, _read_file(spec)) if spec.lower().endswith(_FILE_SUFFIXES) else parse_spec(spec)
    if not isinstance(spec, str):
        if isinstance(spec, (np.ndarray, list, tuple)) or np.isscalar(spec) and not isinstance(spec, bytes):
            return _from_array(spec)
        raise KernelSpecError(None, f"a kernel must be a spec string or a 2D array, not {type(spec).__name__}")

    text = spec.strip()
    if not text:
        raise KernelSpecError(spec, "empty kernel spec")
    if text.lower().endswith(_FILE_SUFFIXES):
        return Linear(text, _read_file(text))
    m = _IM_RE.fullmatch(text)
    if m:
        return Linear(text, _parse_im(m, text))
    tokens = [t for t in _TOKEN_SPLIT.split(text) if t]
    if tokens and all(_NUMBER_RE.fullmatch(t) for t in tokens):
        return Linear(text, _parse_matrix(text, text))
    if text[0] in "0123456789+-." or ";" in text:
        return Linear(text, _parse_matrix(text, text))  # raises, naming the bad token
    name = text.partition(":")[0].strip().lower()
    if name not in _ENTRIES and _looks_like_path(text):
        raise KernelSpecError(
            text, "not a kernel name, matrix or kernel file (kernel files end in .txt, .csv or .npy)"
        )
    return _parse_named(text)


# --------------------------------------------------------------------------- #
# Human text
# --------------------------------------------------------------------------- #


def _fmt(v: float) -> str:
    s = f"{float(v) + 0.0:.6g}"  # + 0.0 turns -0.0 into 0.0
    return "0" if s == "-0" else s


def _matrix_lines(w: np.ndarray, indent: str = "  ") -> list[str]:
    cells = [[_fmt(v) for v in row] for row in w]
    width = max(len(c) for row in cells for c in row)
    return [indent + " ".join(c.rjust(width) for c in row) for row in cells]


def _mapping_text(k: Kernel) -> str:
    parts = ["abs (|v|)"] if k.abs else []
    if k.bias:
        parts.append(
            f"bias {_fmt(k.bias)} of the range ({_fmt(k.bias * 256)} for 8-bit, "
            f"{_fmt(k.bias * 65536)} for 16-bit)"
        )
    return ", ".join(parts) or "none (v as is)"


def _linear_lines(k: Linear, indent: str = "") -> list[str]:
    h, w = k.shape
    lines = [
        f"{indent}shape: {h}x{w} (rows x columns), anchor row {h // 2}, column {w // 2}",
        f"{indent}sum: {_fmt(float(k.weights.sum()))}",
        f"{indent}weights (correlation, as written):",
    ]
    lines += _matrix_lines(k.weights, indent + "  ")
    if k.factors is not None:
        col, row = k.factors
        lines.append(f"{indent}separable: np.outer(column, row)")
        lines.append(f"{indent}  column: " + " ".join(_fmt(v) for v in col))
        lines.append(f"{indent}  row:    " + " ".join(_fmt(v) for v in row))
    else:
        lines.append(f"{indent}separable: no")
    return lines


def describe(name_or_spec) -> str:
    """Multi-line text for ``clconv kernels NAME`` (any spec works; errors as parse_spec)."""
    kernel = parse_spec(name_or_spec)
    text = kernel.spec
    name = text.partition(":")[0].strip().lower()
    entry = _ENTRIES.get(name) if isinstance(name_or_spec, str) else None
    lines = []
    if entry is not None:
        lines.append(f"{name}: {entry.summary}")
        if entry.params:
            lines.append("parameters: " + ", ".join(f"{p}={d}" for p, d in entry.params))
        else:
            lines.append("parameters: none")
        if text != name:
            lines.append(f"spec: {text}")
    else:
        lines.append(f"kernel: {text}")
    lines.append(f"default mapping: {_mapping_text(kernel)}")
    if isinstance(kernel, Magnitude):
        lines.append("gradient magnitude sqrt(gx^2 + gy^2) of:")
        for label, part in (("gx", kernel.gx), ("gy", kernel.gy)):
            lines.append(f"  {label} = {part.spec}:")
            lines += _linear_lines(part, "    ")
    else:
        lines += _linear_lines(kernel)
    return "\n".join(lines)


def summary_lines() -> list[str]:
    """One line per named kernel: ``name  params  description``."""
    rows = []
    for name in kernel_names():
        e = _ENTRIES[name]
        params = ",".join(f"{p}={d}" for p, d in e.params if d != _GAUSS_SIZE)
        if any(d == _GAUSS_SIZE for _, d in e.params):
            params += ",size=auto"
        rows.append((name, params or "-", e.summary))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"{n.ljust(w0)}  {p.ljust(w1)}  {s}" for n, p, s in rows]


# --------------------------------------------------------------------------- #
# File-name-safe form of a spec
# --------------------------------------------------------------------------- #

_MAX_SAFE = 60
_SIMPLE_VALUE = r"-?\d+(?:\.\d+)?"


def _pretty(spec: str) -> str | None:
    """``gaussian:sigma=2`` -> ``gaussian-sigma2`` for canonical named specs, else None.

    Only exact lowercase known names with known keys and plain decimal values
    qualify; on that set the mapping is injective (names are known, keys are
    letters and never prefixes of each other, values start with a digit or
    '-digit'), and its results never contain '_', which every hashed form does.
    """
    name, colon, rest = spec.partition(":")
    entry = _ENTRIES.get(name)
    if entry is None:
        return None
    if not colon:
        return name
    keys = {p for p, _ in entry.params}
    out = [name]
    for item in rest.split(","):
        k, eq, v = item.partition("=")
        if not eq or k not in keys or not re.fullmatch(_SIMPLE_VALUE, v):
            return None
        out.append(f"-{k}{v}")
    return "".join(out)


def file_safe(spec) -> str:
    """A deterministic file-name-safe form of a spec: only ``[A-Za-z0-9._-]``, 1..60 chars.

    Canonical named specs read naturally (``gaussian:sigma=2`` ->
    ``gaussian-sigma2``, ``sobel-x`` -> ``sobel-x``); any other spec becomes a
    readable prefix plus ``_`` and 10 hex digits of its SHA-256, so distinct
    specs give distinct names.  Linear/Magnitude give their spec's form.
    """
    if isinstance(spec, (Linear, Magnitude)):
        spec = spec.spec
    if isinstance(spec, np.ndarray):
        a = np.ascontiguousarray(spec)
        digest = hashlib.sha256(repr((a.shape, a.dtype.str)).encode() + a.tobytes()).hexdigest()[:10]
        return f"array_{digest}"
    spec = str(spec)
    pretty = _pretty(spec)
    if pretty is not None and len(pretty) <= _MAX_SAFE:
        return pretty
    digest = hashlib.sha256(spec.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    prefix = re.sub(r"[^A-Za-z0-9.-]+", "-", spec).strip("-.")
    prefix = prefix[: _MAX_SAFE - 11].rstrip("-.") or "kernel"
    return f"{prefix}_{digest}"
