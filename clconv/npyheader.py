"""The header of a .npy file, read before its data (images and kernel files both check it first)."""

from __future__ import annotations

import numpy as np


def read_npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of the .npy file ``f`` (at its start; left after the
    header). ValueError for anything that is not a version 1 or 2 header."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (EOFError, SyntaxError, TypeError) as e:  # what numpy raises for some broken headers
        raise ValueError(str(e) or type(e).__name__) from e
    return shape, dtype
