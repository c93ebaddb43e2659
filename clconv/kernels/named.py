"""The named kernels as data: building blocks, one factory per name, and the registry
(_ENTRIES: factory, parameters with their defaults, one-line summary)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clconv.errors import KernelSpecError
from clconv.kernels.model import MAX_TAPS, Kernel, Linear, Magnitude
from clconv.kernels.text import _NUMBER_RE

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
    "blur": _Entry(_blur, (("sigma", "1.0"), ("truncate", "4.0"), ("size", _GAUSS_SIZE)), "alias of gaussian"),
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
