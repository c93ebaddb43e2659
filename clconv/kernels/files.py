"""Kernel files: ``.txt``/``.csv`` text and ``.npy`` arrays, read as data (never unpickled) and
refused above a size before they are read."""

from __future__ import annotations

import os

import numpy as np

from clconv.errors import KernelSpecError
from clconv.kernels.model import _checked_side
from clconv.kernels.text import _rectangular, _row_tokens, _to_float

# Kernel files are data: refuse anything larger before reading it.  A full
# 1025x1025 text kernel with 20-character numbers is about 21 MB.
_MAX_FILE_BYTES = 64 * 1024 * 1024

_FILE_SUFFIXES = (".txt", ".csv", ".npy")


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
    from clconv.npyheader import read_npy_header

    try:
        with open(path, "rb") as f:
            try:
                shape, dtype = read_npy_header(f)
            except ValueError as exc:
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
