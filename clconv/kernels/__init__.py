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

This package needs numpy only and imports nothing heavy (no scipy, no pyopencl).

Modules, by job: model.py (Linear, Magnitude and their checks), named.py (the named kernels as
data), text.py (numbers and rows in kernel text), files.py (kernel files), spec.py (parse_spec),
describe.py (describe, summary_lines, file_safe).
"""

from __future__ import annotations

from clconv.kernels.describe import describe, file_safe, summary_lines
from clconv.kernels.model import MAX_TAPS, MAX_TERMS, UNIT_ROUNDOFF, Kernel, Linear, Magnitude, low_rank_eps
from clconv.kernels.named import NAMED, kernel_names
from clconv.kernels.spec import parse_spec

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
    "MAX_TERMS",
    "UNIT_ROUNDOFF",
    "low_rank_eps",
]
