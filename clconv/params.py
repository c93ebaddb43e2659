"""Descriptions shared by every layer: border modes, geometry and windows, the output mapping,
and where float32 planes lie in a device buffer.

Pure Python: options are validated here once, before anything is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clconv.errors import OptionError

if TYPE_CHECKING:
    from clconv.runtime.device import Buffer

# Canonical names are scipy.ndimage's (the test oracle); codes match cl/common.cl.
BORDER_CODES = {"reflect": 0, "mirror": 1, "nearest": 2, "wrap": 3, "constant": 4}
BORDERS = tuple(BORDER_CODES)
BORDER_ALIASES = {
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
BORDER_PICTURES = {
    "reflect": "d c b a | a b c d | d c b a",
    "mirror": "d c b | a b c d | c b a",
    "nearest": "a a a | a b c d | d d d",
    "wrap": "b c d | a b c d | a b c",
    "constant": "k k k | a b c d | k k k",
}
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own limit
MAX_GEOMETRY = 1 << 20  # padding, stride and dilation above this are surely mistakes


def map_index(i, n: int, border: str):
    """``map_index`` of cl/common.cl on a numpy array of coordinates: each mapped into
    [0, n) by the border rule (periodically, however far outside), -1 for the constant."""
    import numpy as np

    i = np.asarray(i)
    inside = (i >= 0) & (i < n)
    if border == "reflect":
        p = np.mod(i, 2 * n)
        mapped = np.where(p < n, p, 2 * n - 1 - p)
    elif border == "mirror":
        if n == 1:
            mapped = np.zeros_like(i)
        else:
            p = np.mod(i, 2 * n - 2)
            mapped = np.where(p < n, p, 2 * n - 2 - p)
    elif border == "nearest":
        mapped = np.clip(i, 0, n - 1)
    elif border == "wrap":
        mapped = np.mod(i, n)
    else:  # constant
        mapped = np.full_like(i, -1)
    return np.where(inside, i, mapped)


def checked_border_value(value, border) -> float:
    """The constant of the constant border, in pixel units: a finite number, and 0 for ``zero``."""
    import math

    try:
        cval = float(value)
    except (TypeError, ValueError):
        raise OptionError("--border-value", f"expected a number, got {value!r}") from None
    if not math.isfinite(cval):
        raise OptionError("--border-value", f"must be a finite number, got {value}")
    if str(border).strip().lower() == "zero" and cval != 0.0:  # SPEC: zero = constant 0
        raise OptionError(
            "--border-value",
            f"--border zero means constant 0, not {cval:g} (use --border constant to choose the value)",
        )
    return cval


def normalize_border(name: str) -> str:
    """Canonical border name for a name or alias; OptionError for anything else."""
    key = str(name).strip().lower()
    key = BORDER_ALIASES.get(key, key)
    if key not in BORDER_CODES:
        known = ", ".join(list(BORDERS) + sorted(BORDER_ALIASES))
        raise OptionError("--border", f"unknown border mode {name!r} (choose from {known})")
    return key


def _positive_int(value, option: str, minimum: int) -> int:
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise OptionError(option, f"expected an integer, got {value!r}") from None
    if not minimum <= number <= MAX_GEOMETRY:
        raise OptionError(option, f"must be between {minimum} and {MAX_GEOMETRY}, got {number}")
    return number


@dataclass(frozen=True)
class Window:
    """Where one kernel's taps fall for each output pixel, along both axes.

    Input row of tap i for output row oy is ``oy*stride + i*dilation - off[0]``;
    ``sample_off`` places the single pixel that stands for an output pixel
    (used for kept alpha and for colour where no visible pixel contributes).
    """

    out_shape: tuple[int, int]
    off: tuple[int, int]
    sample_off: tuple[int, int]
    stride: int
    dilation: int


def band_rows(
    budget_bytes: int, row_bytes: int, *, span: int = 1, stride: int = 1, unit: int = 1, most: int | None = None
) -> int:
    """Output rows per band of a banded pass: the most rows whose input, ``(rows - 1) * stride +
    span`` rows of ``row_bytes`` each, fits in ``budget_bytes``, rounded down to a multiple of
    ``unit``; then at most ``most`` (the output's rows) and at least ``unit``."""
    fits = (budget_bytes // max(row_bytes, 1) - span) // stride + 1
    rows = max(unit, fits - fits % unit)
    return max(unit, rows if most is None else min(most, rows))


@dataclass(frozen=True)
class Mapping:
    """v -> scale * (|v| if use_abs else v) + bias; integer outputs then round half to even and clip."""

    use_abs: bool = False
    scale: float = 1.0
    bias: float = 0.0


@dataclass(frozen=True)
class Planes:
    """``count`` float32 channels of ``shape``, starting ``offset`` floats into ``buffer``.

    Channels are separate planes ([C][H][W], ``interleave`` 1), or all of them
    interleaved in one HxWxC image (``interleave`` == count), filtered in place.
    """

    buffer: Buffer
    offset: int
    count: int
    shape: tuple[int, int]
    interleave: int = 1
    dtype: str = "float32"  # the samples' type: only the in-place path reads or writes integers

    @property
    def size(self) -> int:
        """Pixels per plane."""
        return self.shape[0] * self.shape[1]

    @property
    def planes(self) -> int:
        """Separate planes an algorithm iterates over (1 when the channels are interleaved)."""
        return self.count // self.interleave

    def sub(self, first: int, count: int) -> Planes:
        """``count`` of these separate planes from the ``first``, in the same buffer."""
        assert self.interleave == 1, "channels of an interleaved image are not separate planes"
        return Planes(self.buffer, self.offset + first * self.size, count, self.shape)


@dataclass(frozen=True)
class Geometry:
    """Output geometry: "same" (padding None) or PyTorch's padded/strided/dilated."""

    padding: int | None = None
    stride: int = 1
    dilation: int = 1

    @classmethod
    def parse(cls, padding=None, stride=1, dilation=1) -> Geometry:
        """The Geometry of --padding (None or 'same', 'valid', or N >= 0), --stride and --dilation
        (>= 1); OptionError on bad values."""
        if padding is not None:
            if isinstance(padding, str):
                if padding.strip().lower() == "valid":
                    padding = 0
                elif padding.strip().lower() == "same":
                    padding = None
            if padding is not None:
                padding = _positive_int(padding, "--padding", 0)
        return cls(padding, _positive_int(stride, "--stride", 1), _positive_int(dilation, "--dilation", 1))

    def window(self, shape: tuple[int, int], kernel_shape: tuple[int, int], flip: bool = False) -> Window:
        """The window for an input of ``shape``; OptionError if the output would be empty."""
        s, d = self.stride, self.dilation
        out, off, sample = [], [], []
        for n, k in zip(shape, kernel_shape):
            span = d * (k - 1) + 1  # extent of the dilated kernel
            if self.padding is None:
                # "same": the dilated kernel's anchor sits on the output pixel;
                # a flipped even kernel has its anchor one tap earlier (scipy.ndimage.convolve).
                anchor = (span - 1) // 2 if flip else span // 2
                out.append(-(-n // s))
                off.append(anchor)
                sample.append(0)
            else:
                size = (n + 2 * self.padding - span) // s + 1
                if size < 1:
                    raise OptionError(
                        "--padding",
                        f"output would be empty: input {n}, padding {self.padding}, kernel {k}, "
                        f"dilation {d}, stride {s}",
                    )
                centre = (k - 1) // 2 if flip else k // 2
                out.append(size)
                off.append(self.padding)
                sample.append(self.padding - d * centre)
        return Window((out[0], out[1]), (off[0], off[1]), (sample[0], sample[1]), s, d)


def chain_stages(plan):
    """(last, stage) for each kernel of ``plan``'s chain, each stage a plan of its own kernel:
    float32 between kernels, the output mapping and dtype at the last (as one run computes it)."""
    from dataclasses import replace

    import numpy as np

    for index, kernel in enumerate(plan.kernels):
        last = index == len(plan.kernels) - 1
        yield last, replace(plan, kernels=(kernel,), mapping=plan.mapping if last else Mapping(),
                            out_dtype=plan.out_dtype if last else np.dtype(np.float32))  # fmt: skip
