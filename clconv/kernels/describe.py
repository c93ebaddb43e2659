"""Kernels in words: ``describe`` (clconv kernels NAME), ``summary_lines`` (clconv kernels) and
``file_safe`` (a spec as part of a file name)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from clconv.kernels.model import Kernel, Linear, Magnitude
from clconv.kernels.named import _ENTRIES, _GAUSS_SIZE, kernel_names
from clconv.kernels.spec import parse_spec


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
            f"bias {_fmt(k.bias)} of the range ({_fmt(k.bias * 256)} for 8-bit, {_fmt(k.bias * 65536)} for 16-bit)"
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
