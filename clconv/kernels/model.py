"""The kernel types: Linear (correlation weights as written, and their separable terms) and
Magnitude (the gradient magnitude of two), with the checks every source of weights shares."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from clconv.errors import KernelSpecError

MAX_TAPS = 1025  # each side of a kernel has 1..MAX_TAPS taps (SPEC "Kernels")


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
        """(height, width) of the weights."""
        return (int(self.weights.shape[0]), int(self.weights.shape[1]))

    @property
    def nonnegative(self) -> bool:
        """All weights >= 0: colour is alpha-weighted under ``--alpha keep``."""
        return bool(np.all(self.weights >= 0))

    @property
    def parts(self) -> tuple[Linear, ...]:
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
        terms: list[tuple[np.ndarray, np.ndarray]] = []
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

    def flipped(self) -> Linear:
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
        """Whether both gradients' weights are all >= 0."""
        return self.gx.nonnegative and self.gy.nonnegative

    @property
    def parts(self) -> tuple[Linear, Linear]:
        """The linear filters this kernel is made of: gx and gy."""
        return (self.gx, self.gy)

    def flipped(self) -> Magnitude:
        """Both gradients rotated 180 degrees (``--flip``)."""
        return Magnitude(self.spec, self.gx.flipped(), self.gy.flipped(), self.abs, self.bias)


Kernel = Union[Linear, Magnitude]


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
