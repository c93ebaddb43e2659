"""An independent float64 reference for clconv.convolve, and the helpers that compare with it.

The oracle implements SPEC.md "Semantics" with scipy.ndimage and numpy in float64 only. It never
imports clconv's engine, kernel table or parser: named kernels are written out again here from the
SPEC table (gaussian through scipy's own definition), so a wrong weight in clconv cannot hide behind
the same wrong weight in the reference. tests/test_oracle_selfcheck.py checks this module against
brute-force Python loops, so the oracle itself is trusted.

Conventions (the contract, restated):

* correlation as written, anchor (kh//2, kw//2): exactly ``scipy.ndimage.correlate``;
  ``flip=True``: exactly ``scipy.ndimage.convolve``.
* "same" geometry (padding None): dilated kernel applied "same", then ``[::S, ::S]``.
* padding N (or "valid" = 0): PyTorch geometry over the image extended N pixels with the border mode,
  ``out[oy, ox] = sum w[i, j] * padded[oy*S + i*D, ox*S + j*D]`` (w rotated 180 degrees with flip).
* alpha "keep": last channel is alpha, resampled under the anchor tap; colour alpha-weighted:
  kernels whose weights are all >= 0: m = sum(k*a*c) / sum(k*a); any other kernel: every tap's
  colour counts as a*c + (1-a)*m with m = sum(|k|*a*c) / sum(|k|*a) (a in 0..1, the anchor's
  colour where the sum is 0), i.e. sum(k*a*c) + m * (sum(k) - sum(k*a)); sobel: that on each part.
* output mapping ``clip(rint(scale * (|v| if abs else v) + bias), 0, max)`` for integer outputs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

# ----------------------------------------------------------------------------------------------
# Border modes
# ----------------------------------------------------------------------------------------------

MODES = ("reflect", "mirror", "nearest", "wrap", "constant")

#: SPEC aliases -> canonical scipy name ("zero" also forces the constant to 0).
ALIASES = {
    "symmetric": "reflect",
    "reflect101": "mirror",
    "reflect_101": "mirror",
    "edge": "nearest",
    "replicate": "nearest",
    "clamp": "nearest",
    "periodic": "wrap",
    "tile": "wrap",
    "circular": "wrap",
    "zero": "constant",
}

#: scipy.ndimage border name -> numpy.pad mode with the same extension rule (as skimage's _to_np_mode).
_NP_PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap", "constant": "constant"}


def canonical_border(border: str, border_value: float = 0.0) -> tuple[str, float]:
    """(scipy mode, constant) for a SPEC border name or alias."""
    name = border.lower()
    if name == "zero":
        return "constant", 0.0
    name = ALIASES.get(name, name)
    if name not in MODES:
        raise ValueError(f"unknown border {border!r}")
    return name, float(border_value)


def pad(x: np.ndarray, n: int, mode: str, cval: float = 0.0) -> np.ndarray:
    """Extend a 2D array by n pixels on every side with scipy's rule for ``mode``, as far as needed."""
    if mode == "constant":
        return np.pad(x, n, mode="constant", constant_values=cval)
    return np.pad(x, n, mode=_NP_PAD[mode])


# ----------------------------------------------------------------------------------------------
# Kernels: the SPEC table, written out again
# ----------------------------------------------------------------------------------------------

_INT_TABLE = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "sobel-x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel-y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "prewitt-x": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    "prewitt-y": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "scharr-x": [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]],
    "scharr-y": [[-3, -10, -3], [0, 0, 0], [3, 10, 3]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "edge": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "emboss": [[-2, -1, 0], [-1, 0, 1], [0, 1, 2]],
}

#: names whose default mapping is abs (SPEC table)
ABS_DEFAULT = frozenset(
    {"sobel-x", "sobel-y", "prewitt-x", "prewitt-y", "scharr-x", "scharr-y", "laplacian", "edge"}
)
#: names whose default mapping is a bias of half the range
BIAS_DEFAULT = frozenset({"emboss"})

#: every required name (``sobel`` is the gradient magnitude, not a weight matrix)
NAMED = tuple(sorted(set(_INT_TABLE) | {"box", "gaussian", "blur", "unsharp", "sobel"}))


def gaussian_1d(sigma: float = 1.0, truncate: float = 4.0, size: int | None = None) -> np.ndarray:
    """scipy.ndimage.gaussian_filter's 1D weights: exp(-x^2 / (2 sigma^2)) normalised, radius
    int(truncate*sigma + 0.5) (or size//2 when the size is given)."""
    radius = int(truncate * sigma + 0.5) if size is None else (int(size) - 1) // 2
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x * x)
    return phi / phi.sum()


def gaussian_2d(sigma: float = 1.0, truncate: float = 4.0, size: int | None = None) -> np.ndarray:
    """Normalised exp(-(x^2+y^2)/(2 sigma^2)); separable, so the outer product of the 1D weights."""
    g = gaussian_1d(sigma, truncate, size)
    return np.outer(g, g)


@dataclass(frozen=True)
class Kernel:
    """One step of a chain: a weight matrix (or the sobel magnitude) and its default mapping."""

    name: str | None  # None for matrices
    weights: np.ndarray | None  # None only for "sobel"
    default_abs: bool = False
    default_half_bias: bool = False

    @property
    def is_magnitude(self) -> bool:
        return self.weights is None

    @property
    def shape(self) -> tuple[int, int]:
        return (3, 3) if self.weights is None else self.weights.shape

    @property
    def nonnegative(self) -> bool:
        return self.weights is not None and bool(np.all(self.weights >= 0))

    @property
    def abs_sum(self) -> float:
        """sum |w|; for the sobel magnitude, sum over both components (|d|g|| <= |dgx| + |dgy|)."""
        if self.weights is None:
            return float(np.abs(_INT_TABLE["sobel-x"]).sum() + np.abs(_INT_TABLE["sobel-y"]).sum())
        return float(np.abs(self.weights).sum())


def _params(text: str) -> dict[str, float]:
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = item.partition("=")
        out[key.strip()] = float(value)
    return out


def named_kernel(name: str, **params: float) -> Kernel:
    """The SPEC table's kernel ``name`` with parameters, built independently of clconv."""
    name = name.lower()
    if name in _INT_TABLE:
        return Kernel(
            name,
            np.array(_INT_TABLE[name], dtype=np.float64),
            default_abs=name in ABS_DEFAULT,
            default_half_bias=name in BIAS_DEFAULT,
        )
    if name == "sobel":
        return Kernel("sobel", None)
    if name == "box":
        size = int(params.get("size", 3))
        return Kernel(name, np.full((size, size), 1.0 / size**2))
    if name in ("gaussian", "blur"):
        size = params.get("size")
        w = gaussian_2d(params.get("sigma", 1.0), params.get("truncate", 4.0), None if size is None else int(size))
        return Kernel(name, w)
    if name == "unsharp":
        g = gaussian_2d(params.get("sigma", 1.0), params.get("truncate", 4.0))
        ident = np.zeros_like(g)
        ident[g.shape[0] // 2, g.shape[1] // 2] = 1.0
        return Kernel(name, ident + params.get("amount", 1.0) * (ident - g))
    raise ValueError(f"oracle does not know kernel {name!r}")


def as_kernel(spec) -> Kernel:
    """A SPEC string (name[:k=v,...], inline matrix, WxH: form) or 2D array -> Kernel."""
    if isinstance(spec, Kernel):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        m = re.fullmatch(r"(\d+)x(\d+)\s*:(.*)", text, flags=re.S)
        if m:
            w, h = int(m.group(1)), int(m.group(2))
            vals = [float(v) for v in re.split(r"[\s,]+", m.group(3).strip()) if v]
            return Kernel(None, np.array(vals, dtype=np.float64).reshape(h, w))
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9_-]*)(?::(.*))?", text)
        if m:
            return named_kernel(m.group(1), **_params(m.group(2) or ""))
        rows = [[float(v) for v in re.split(r"[\s,]+", r.strip()) if v] for r in text.split(";")]
        return Kernel(None, np.array(rows, dtype=np.float64))
    w = np.asarray(spec, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError("kernel arrays must be 2D")
    return Kernel(None, w)


def as_chain(kernel) -> list[Kernel]:
    """A kernel or a list of kernels (a chain) -> list[Kernel]."""
    if isinstance(kernel, (list, tuple)):
        return [as_kernel(k) for k in kernel]
    return [as_kernel(kernel)]


# ----------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------


def dilate(w: np.ndarray, d: int) -> np.ndarray:
    """The kernel with d-1 zeros between taps: size d*(k-1)+1 per axis."""
    if d == 1:
        return w
    kh, kw = w.shape
    out = np.zeros((d * (kh - 1) + 1, d * (kw - 1) + 1), dtype=w.dtype)
    out[::d, ::d] = w
    return out


def _padding_value(padding) -> int | None:
    if padding is None:
        return None
    if isinstance(padding, str):
        if padding != "valid":
            raise ValueError(f"padding {padding!r}")
        return 0
    return int(padding)


def output_size(n: int, k: int, padding=None, stride: int = 1, dilation: int = 1) -> int:
    """Output length along one axis: ceil(n/S) for "same", PyTorch's formula with padding."""
    p = _padding_value(padding)
    if p is None:
        return -(-n // stride)
    return (n + 2 * p - dilation * (k - 1) - 1) // stride + 1


def output_shape(image_shape, kernel_shapes, padding=None, stride=1, dilation=1) -> tuple[int, ...]:
    """Output shape of a chain (geometry applied by every kernel in turn), channels kept."""
    h, w = image_shape[:2]
    for kh, kw in kernel_shapes:
        h = output_size(h, kh, padding, stride, dilation)
        w = output_size(w, kw, padding, stride, dilation)
    return (h, w) + tuple(image_shape[2:])


@dataclass(frozen=True)
class Geometry:
    mode: str = "reflect"
    cval: float = 0.0
    flip: bool = False
    padding: int | None = None
    stride: int = 1
    dilation: int = 1


def correlate_plain(x: np.ndarray, w: np.ndarray, g: Geometry, cval: float | None = None) -> np.ndarray:
    """Filter one float64 2D channel with weights ``w`` under geometry ``g``."""
    cval = g.cval if cval is None else cval
    if g.padding is None:
        # Extend with numpy.pad first, then let scipy correlate the interior only. scipy.ndimage's
        # n-D correlate/convolve mis-extend mode="reflect" once a kernel overhangs the image by
        # several periods (scipy 1.17: a 1x3 image with a 1x24 kernel, a 1x2 image with 1x16;
        # correlate1d and numpy.pad are right), so scipy never sees a border here.
        wd = dilate(w, g.dilation)
        reach = max(wd.shape)
        h, wid = x.shape
        p = pad(x, reach, g.mode, cval)
        f = ndi.convolve if g.flip else ndi.correlate
        full = f(p, wd, mode="constant", cval=0.0)
        return full[reach : reach + h, reach : reach + wid][:: g.stride, :: g.stride]
    wk = w[::-1, ::-1] if g.flip else w
    kh, kw = wk.shape
    S, D, N = g.stride, g.dilation, g.padding
    oh = (x.shape[0] + 2 * N - D * (kh - 1) - 1) // S + 1
    ow = (x.shape[1] + 2 * N - D * (kw - 1) - 1) // S + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"output size {oh}x{ow} < 1")
    p = pad(x, N, g.mode, cval)
    out = np.zeros((oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            if wk[i, j] != 0:
                out += wk[i, j] * p[i * D : i * D + S * (oh - 1) + 1 : S, j * D : j * D + S * (ow - 1) + 1 : S]
    return out


def sample_anchor(x: np.ndarray, kshape: tuple[int, int], g: Geometry) -> np.ndarray:
    """x filtered with a delta at the anchor tap: what "unchanged" means under a geometry change."""
    if g.padding is None:
        return x[:: g.stride, :: g.stride].astype(np.float64)
    kh, kw = kshape
    ay, ax = ((kh - 1) // 2, (kw - 1) // 2) if g.flip else (kh // 2, kw // 2)
    S, D, N = g.stride, g.dilation, g.padding
    oh = (x.shape[0] + 2 * N - D * (kh - 1) - 1) // S + 1
    ow = (x.shape[1] + 2 * N - D * (kw - 1) - 1) // S + 1
    p = pad(x.astype(np.float64), N, g.mode, g.cval)
    return p[ay * D : ay * D + S * (oh - 1) + 1 : S, ax * D : ax * D + S * (ow - 1) + 1 : S]


def _apply_plain(x: np.ndarray, k: Kernel, g: Geometry) -> np.ndarray:
    if k.is_magnitude:
        gx = correlate_plain(x, np.array(_INT_TABLE["sobel-x"], np.float64), g)
        gy = correlate_plain(x, np.array(_INT_TABLE["sobel-y"], np.float64), g)
        return np.sqrt(gx * gx + gy * gy)
    return correlate_plain(x, k.weights, g)


# ----------------------------------------------------------------------------------------------
# Output mapping
# ----------------------------------------------------------------------------------------------

INT_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def mapping_for(dtype, last: Kernel, abs=None, scale=None, bias=None) -> tuple[bool, float, float, bool]:
    """(abs, scale, bias, integer) actually applied to the output, per SPEC "Output mapping"."""
    dtype = np.dtype(dtype)
    if dtype in INT_MAX:
        a = last.default_abs if abs is None else bool(abs)
        b = ((INT_MAX[dtype] + 1) / 2 if last.default_half_bias else 0.0) if bias is None else float(bias)
        s = 1.0 if scale is None else float(scale)
        return a, s, b, True
    # float32: the named defaults do not apply; explicit values do
    return bool(abs), 1.0 if scale is None else float(scale), 0.0 if bias is None else float(bias), False


def apply_mapping(v: np.ndarray, dtype, mapping) -> np.ndarray:
    a, s, b, integer = mapping
    y = s * (np.abs(v) if a else v) + b
    if integer:
        y = np.clip(np.rint(y), 0, INT_MAX[np.dtype(dtype)])
    return y


# ----------------------------------------------------------------------------------------------
# The reference
# ----------------------------------------------------------------------------------------------

#: weighted-colour pixels whose denominator sum(k*a) is below this fraction of sum(k)*alpha_range
#: are ill-conditioned (an engine may call them 0 and keep the anchor colour): only bounds are checked.
TINY_DENOMINATOR = 1e-3


@dataclass(repr=False)
class Reference:
    """What clconv.convolve must return, with per-element tolerances.

    ``expected`` is float64 in the output layout (already rounded and clipped for integer dtypes);
    ``tol`` is the allowed |out - expected| per element (inf where only bounds are checked);
    ``lower``/``upper`` bound every element (±inf when unbounded).
    """

    expected: np.ndarray
    raw: np.ndarray  # float64 filtered values before the mapping (for the self-check)
    dtype: np.dtype
    tol: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    alpha_exact: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.expected.shape

    def __repr__(self) -> str:  # compact in pytest tracebacks
        return f"Reference(shape={self.shape}, dtype={self.dtype}, notes={self.notes})"


def value_range(image: np.ndarray, mode: str = "reflect", cval: float = 0.0) -> float:
    """The input's value range for the float tolerance: 255/65535 for integers; for float32
    max(max-min, max|x|) over the image (and the border constant when it is used), or 1 if 0.
    max|x| is included because float32's rounding is relative to magnitude, not to spread."""
    dt = np.dtype(image.dtype)
    if dt in INT_MAX:
        return float(INT_MAX[dt])
    x = np.asarray(image, np.float64)
    vals = [float(np.ptp(x)) if x.size else 0.0, float(np.abs(x).max()) if x.size else 0.0]
    if mode == "constant":
        vals += [abs(cval), float(max(x.max(), cval) - min(x.min(), cval))]
    r = max(vals)
    return r if r > 0 else 1.0


def float_atol(image, chain: list[Kernel], mode="reflect", cval=0.0, mapping=None) -> float:
    """1e-4 * value_range * prod(max(1, sum|w|)) (+ the mapping's scale and bias).

    Why sum|w|: the device accumulates in float32, and every tap's product and partial sum carry a
    rounding error relative to the magnitudes involved, which are bounded by sum|w| * max|x|; so the
    absolute error (and the size of the result that cancellation can hide it in) grows with sum|w|,
    not with the result's value. A chain composes: each kernel multiplies the previous error and
    magnitude by at most its own sum|w|. SPEC's "1e-4 relative to the input's value range" is the
    tolerance for kernels with sum|w| <= 1 (blurs); sharper kernels are scaled up accordingly."""
    atol = 1e-4 * value_range(image, mode, cval)
    for k in chain:
        atol *= max(1.0, k.abs_sum)
    if mapping is not None:
        _, s, b, _ = mapping
        atol = atol * max(1.0, abs(s)) + 1e-6 * abs(b)
    return atol


def _has_alpha(image: np.ndarray) -> bool:
    return image.ndim == 3 and image.shape[2] >= 2


def reference(
    image: np.ndarray,
    kernel,
    border: str = "reflect",
    *,
    border_value: float = 0.0,
    flip: bool = False,
    padding=None,
    stride: int = 1,
    dilation: int = 1,
    alpha=None,
    abs=None,
    scale=None,
    bias=None,
) -> Reference:
    """The float64 reference of ``clconv.convolve(image, kernel, border, ...)`` (same arguments)."""
    image = np.asarray(image)
    dtype = np.dtype(image.dtype)
    chain = as_chain(kernel)
    mode, cval = canonical_border(border, border_value)
    g = Geometry(mode, cval, bool(flip), _padding_value(padding), int(stride), int(dilation))
    if g.stride < 1 or g.dilation < 1 or (g.padding is not None and g.padding < 0):
        raise ValueError("bad geometry")
    squeeze = image.ndim == 2
    x = np.asarray(image, np.float64)
    if squeeze:
        x = x[:, :, None]
    nch = x.shape[2]
    keep = alpha == "keep" and _has_alpha(image)
    ncol = nch - 1 if keep else nch

    chans = [x[:, :, c] for c in range(nch)]
    cur_alpha = chans[-1] if keep else None
    colour = chans[:ncol]
    # bookkeeping for the alpha-weighted path of the LAST kernel (where tolerance must be relaxed)
    tiny = None
    zero = None
    amax = float(INT_MAX.get(dtype, 1.0))  # alpha's full value
    for k in chain:
        if keep and not k.nonnegative:
            parts = [k.weights] if not k.is_magnitude else [
                np.array(_INT_TABLE[n], np.float64) for n in ("sobel-x", "sobel-y")]
            bounds = [(float(c.min()), float(c.max())) for c in colour]
            if g.mode == "constant":
                bounds = [(min(lo, g.cval), max(hi, g.cval)) for lo, hi in bounds]
            new, lows, highs = [], [], []
            tiny = np.zeros(sample_anchor(cur_alpha, k.shape, g).shape, bool)
            for c, (lo, hi) in zip(colour, bounds):
                vals, ends = [], []
                for w in parts:
                    v, small, at_lo, at_hi = _alpha_signed(c, cur_alpha, w, g, amax, lo, hi)
                    tiny |= small
                    vals.append(v)
                    ends.append((at_lo, at_hi))
                if k.is_magnitude:
                    new.append(np.sqrt(vals[0] ** 2 + vals[1] ** 2))
                    lows.append(np.zeros_like(vals[0]))  # |g| over the m-intervals of both parts
                    highs.append(np.sqrt(sum(np.maximum(np.abs(a_), np.abs(b_)) ** 2 for a_, b_ in ends)))
                else:
                    new.append(vals[0])
                    at_lo, at_hi = ends[0]
                    lows.append(np.minimum(at_lo, at_hi))
                    highs.append(np.maximum(at_lo, at_hi))
            colour = new
            cur_alpha = sample_anchor(cur_alpha, k.shape, g)
            zero, bounds = None, None
        elif keep and k.nonnegative:
            kshape = k.weights.shape
            den = correlate_plain(cur_alpha, k.weights, g)
            anchor_alpha = sample_anchor(cur_alpha, kshape, g)
            new = []
            for c in colour:
                # correlate(a*c) over the border-extended channels: ext(a)*ext(c), constant cval*cval
                num = correlate_plain(cur_alpha * c, k.weights, g, cval=g.cval * g.cval)
                anchor = sample_anchor(c, kshape, g)
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.where(den != 0, num / np.where(den != 0, den, 1.0), anchor)
                new.append(v)
            arange = INT_MAX.get(dtype, max(1.0, float(np.abs(x[:, :, -1]).max())))
            thr = TINY_DENOMINATOR * float(k.weights.sum()) * arange
            zero = den == 0
            tiny = (den > 0) & (den < thr)
            # a weighted colour is a convex combination of the colours under the kernel (or the
            # anchor colour): the range of what entered this kernel bounds it
            bounds = [(float(c.min()), float(c.max())) for c in colour]
            if g.mode == "constant":
                bounds = [(min(lo, g.cval), max(hi, g.cval)) for lo, hi in bounds]
            colour = new
            cur_alpha = anchor_alpha
        else:
            colour = [_apply_plain(c, k, g) for c in colour]
            if keep:
                cur_alpha = sample_anchor(cur_alpha, k.shape, g)
            tiny = zero = None

    mapping = mapping_for(dtype, chain[-1], abs, scale, bias)
    raw_list = colour + ([cur_alpha] if keep else [])
    raw = np.stack(raw_list, axis=-1)
    expected = np.stack([apply_mapping(c, dtype, mapping) for c in colour] + ([cur_alpha] if keep else []), -1)
    if mapping[3]:
        tol_val = 1.0  # SPEC: integer outputs differ from the rounded oracle by at most 1
    else:
        tol_val = float_atol(image, chain, mode, cval, mapping)
    tol = np.full(expected.shape, tol_val)
    lower = np.full(expected.shape, -np.inf)
    upper = np.full(expected.shape, np.inf)
    if keep:
        tol[..., -1] = 0.0  # alpha is kept exactly
    if tiny is not None and tiny.any() and bounds is None:
        # signed kernel: m is ill-conditioned, the output is affine in m within the colour range
        a_, s_, b_, _ = mapping
        for c in range(ncol):
            lo, hi = lows[c][tiny], highs[c][tiny]
            tol[..., c][tiny] = np.inf
            if a_:  # |v| over [lo, hi]
                straddle = (lo <= 0) & (hi >= 0)
                lo, hi = np.where(straddle, 0.0, np.minimum(np.abs(lo), np.abs(hi))), np.maximum(np.abs(lo), np.abs(hi))
            ends = [apply_mapping(e, dtype, (False, s_, b_, mapping[3])) for e in (lo, hi)]
            lower[..., c][tiny] = np.minimum(*ends) - tol_val
            upper[..., c][tiny] = np.maximum(*ends) + tol_val
    elif tiny is not None and tiny.any():
        # ill-conditioned ratio: any value between the extreme input colours is acceptable
        a_, s_, b_, _ = mapping
        for c in range(ncol):
            tol[..., c][tiny] = np.inf
            lo, hi = bounds[c]
            if not a_ and s_ >= 0:
                lower[..., c][tiny] = apply_mapping(np.array(lo), dtype, mapping) - tol_val
                upper[..., c][tiny] = apply_mapping(np.array(hi), dtype, mapping) + tol_val
    if squeeze:
        expected, raw, tol, lower, upper = (a[:, :, 0] for a in (expected, raw, tol, lower, upper))
    ref = Reference(expected, raw, dtype, tol, lower, upper, alpha_exact=keep)
    if zero is not None:
        ref.notes.append(f"{int(zero.sum())} zero-denominator pixels, {int(tiny.sum())} tiny")
    return ref


def _alpha_signed(c, a, w, g: Geometry, amax: float, lo: float, hi: float):
    """A signed kernel's colour under a kept alpha: sum(k*a*c) + m * (sum(k) - sum(k*a)), a in 0..1,
    m = sum(|k|*a*c) / sum(|k|*a) (the anchor's colour where that is 0). Also: where sum(|k|*a) is
    tiny (m ill-conditioned), and the value at m = lo and m = hi (the colour range)."""
    cc = g.cval * g.cval
    num = correlate_plain(a * c, w, g, cval=cc) / amax
    den = correlate_plain(a, w, g) / amax
    mnum = correlate_plain(a * c, np.abs(w), g, cval=cc)
    mden = correlate_plain(a, np.abs(w), g)
    anchor = sample_anchor(c, w.shape, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(mden != 0, mnum / np.where(mden != 0, mden, 1.0), anchor)
    rest = float(w.sum()) - den
    tiny = (mden != 0) & (np.abs(mden) < TINY_DENOMINATOR * float(np.abs(w).sum()) * amax)
    return num + m * rest, tiny, num + lo * rest, num + hi * rest


# ----------------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------------


def assert_matches(out, ref: Reference, context: str = "") -> None:
    """Assert clconv's output equals the reference: type, dtype, shape exactly; values to ref.tol."""
    assert isinstance(out, np.ndarray), f"{context}: got {type(out).__name__}, not ndarray"
    assert out.dtype == ref.dtype, f"{context}: dtype {out.dtype} != {ref.dtype}"
    assert out.shape == ref.shape, f"{context}: shape {out.shape} != {ref.shape}"
    o = out.astype(np.float64)
    assert np.all(np.isfinite(o) | ~np.isfinite(ref.expected)), f"{context}: non-finite output"
    err = np.abs(o - ref.expected)
    bad = (err > ref.tol) | (o < ref.lower) | (o > ref.upper)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        finite = np.isfinite(ref.tol)
        worst = float(np.max(np.where(finite, err - ref.tol, -np.inf)))
        raise AssertionError(
            f"{context}: {int(bad.sum())}/{bad.size} elements differ; first at {idx}: "
            f"got {o[idx]!r}, expected {ref.expected[idx]!r} (tol {ref.tol[idx]:.3g}, "
            f"bounds [{ref.lower[idx]:.6g}, {ref.upper[idx]:.6g}]); worst excess over tol {worst:.3g}"
        )


# ----------------------------------------------------------------------------------------------
# Test images
# ----------------------------------------------------------------------------------------------


def make_image(shape, dtype, seed: int = 0, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """A random test image. Integer images use the full range; float32 defaults to [-1.5, 3.5)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype in INT_MAX:
        top = INT_MAX[dtype] if hi is None else int(hi)
        return rng.integers(0 if lo is None else int(lo), top + 1, size=shape).astype(dtype)
    lo = -1.5 if lo is None else lo
    hi = 3.5 if hi is None else hi
    return (lo + (hi - lo) * rng.random(shape)).astype(np.float32)
