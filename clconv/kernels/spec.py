"""parse_spec: a kernel from a spec string (in the order the package's docstring gives), a path,
or an array."""

from __future__ import annotations

import functools
import os
import re

import numpy as np

from clconv.errors import KernelSpecError
from clconv.kernels.files import _FILE_SUFFIXES, _read_file
from clconv.kernels.model import Kernel, Linear, Magnitude, _checked_side
from clconv.kernels.named import _ENTRIES, kernel_names
from clconv.kernels.text import _NUMBER_RE, _row_tokens, _rows_to_array, _to_float

_IM_RE = re.compile(r"\s*(\d+)(?:\s*[xX]\s*(\d+))?\s*([+-]\d+[+-]\d+)?\s*:(.*)", re.DOTALL)
_TOKEN_SPLIT = re.compile(r"[\s,;]+")


def _parse_matrix(text: str, subject) -> np.ndarray:
    """Inline matrix: rows by ``;`` or newline (blank rows ignored), values by spaces/commas."""
    rows: list[list[str]] = []
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
            f"ImageMagick kernel offsets ({m.group(3)}) are not supported; the anchor is always (height//2, width//2)",
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


@functools.lru_cache(maxsize=256)  # kernels are frozen: a batch or a dask array asks for the same one per image
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
                raise KernelSpecError(text, f"unknown parameter {k!r} for {key!r} (takes {', '.join(allowed)})")
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
        raise KernelSpecError(text, "not a kernel name, matrix or kernel file (kernel files end in .txt, .csv or .npy)")
    return _parse_named(text)
