"""Numbers that several modules, or a module and an OpenCL program, must agree on: one home each.

Pure Python with no imports, so that the runtime can read the build defines without loading
anything else. Tile sizes that the code of a program fixes (vector widths: a float16 is 16
values) stay ``#define``s in ``cl/*.cl``; ``tests/test_constants.py`` checks that the Python
side uses the same numbers.
"""

from __future__ import annotations

# ---------------------------------------------------------------- sample types
# The pixel types clconv reads and writes, by numpy name.
SAMPLE_TYPES = ("uint8", "uint16", "float32")
# Full scale: the largest integer value, 1.0 for float images (their range is 0..1 by convention).
MAX_VALUE = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}
# The short names in the OpenCL kernels' names (unpack_u8, correlate_vec_u8_f32, row_pass_vec_u16).
TYPE_CODES = {"uint8": "u8", "uint16": "u16", "float32": "f32"}
FLOAT_BYTES = 4  # the device computes in float32


def sample_name(dtype) -> str:
    """The numpy name of ``dtype`` (a numpy dtype, a scalar type or a name): "uint8"."""
    import numpy as np

    return np.dtype(dtype).name


def max_value(dtype) -> float:
    """Full scale of ``dtype``: 255.0 for uint8, 65535.0 for uint16, 1.0 for float32."""
    return MAX_VALUE[sample_name(dtype)]


# ---------------------------------------------------------------- build defines
# The free parameters of the OpenCL programs: Runtime.program builds every program with these
# (-DNAME=value; a variant names its own value, see clconv.resources.variant), and the .cl files
# have no default of their own. The algorithms size their launches by the same numbers.
PROGRAM_DEFINES = {
    # output rows per work-item of correlate_vec (`clconv tune` measures direct.ROW_CHOICES)
    "direct.cl": {"VEC_ROWS": 2},
    # output rows per work-item of the column pass: 4 won 42 of 56 tuned cases (separable.COLUMN_ROWS)
    "separable.cl": {"COL_ROWS": 4},
    # kernels per fused pass of a bank
    "bank.cl": {"BANK": 8},
    # values per pass in private memory in the FFT's columns shape: whole columns, L2-resident on a
    # CPU (the passes shape, FFT_COLUMNS unset, does not use it)
    "fft.cl": {"FFT_RMAX": 2304},
}


def build_defines(cl_file: str, overrides=()) -> list[str]:
    """``-DNAME=value`` options for ``cl_file``: its PROGRAM_DEFINES, then ``overrides`` (options
    such as ``-DVEC_ROWS=4``), one option per name, an override replacing a default."""
    defines = {name: f"-D{name}={value}" for name, value in PROGRAM_DEFINES.get(cl_file, {}).items()}
    for option in overrides:
        defines[option[2:].split("=", 1)[0] if option.startswith("-D") else option] = option
    return list(defines.values())
