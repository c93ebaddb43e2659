"""Numbers and rows of numbers as kernel text writes them (inline matrices, the WxH: form, text
files, named kernels' parameters): one grammar of a number, one rule for rows."""

from __future__ import annotations

import re

import numpy as np

from clconv.errors import KernelSpecError
from clconv.kernels.model import _checked_side

_NUMBER_RE = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE)


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
