"""One home for each constant (clconv/constants.py and the module that owns each concept), and
the OpenCL programs agreeing with it: the build defines come from Python, the tile sizes that
stay ``#define``s in cl/*.cl equal the numbers the Python side sizes its launches by, and the
kernel names Python builds exist in the programs built on the real device. Also: no import
cycle between clconv's modules."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from clconv import constants, gemm
from clconv.algorithms import direct, fft, separable
from clconv.constants import PROGRAM_DEFINES, SAMPLE_TYPES, TYPE_CODES, build_defines
from clconv.params import BORDER_CODES

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clconv"


def defines(cl_file: str) -> dict[str, list[str]]:
    """Every ``#define NAME value`` of a program (a name defined in two #if branches: both values)."""
    found: dict[str, list[str]] = {}
    for name, value in re.findall(r"^\s*#define\s+(\w+)[ \t]+(\S+)", (ROOT / "cl" / cl_file).read_text(), re.M):
        found.setdefault(name, []).append(value)
    return found


def number(cl_file: str, name: str) -> int:
    (value,) = defines(cl_file)[name]
    return int(value)


# ---------------------------------------------------------------- build defines from Python
@pytest.mark.parametrize("cl_file", sorted(PROGRAM_DEFINES))
def test_build_defines_have_no_second_value_in_the_program(cl_file):
    """A free parameter is only a build define: the program refuses to build without it rather
    than fall back on a number of its own."""
    source = (ROOT / "cl" / cl_file).read_text()
    for name in PROGRAM_DEFINES[cl_file]:
        assert name not in defines(cl_file), f"{cl_file} defines {name} itself"
        assert re.search(rf"#ifndef {name}\b[^\n]*\n#error", source), f"{cl_file} builds without {name}"


def test_build_defines_take_a_variants_value():
    assert build_defines("direct.cl") == ["-DVEC_ROWS=2"]
    assert build_defines("direct.cl", ["-DVEC_ROWS=4"]) == ["-DVEC_ROWS=4"]  # one value per name
    assert build_defines("fft.cl", ["-DFFT_COLUMNS=1"]) == ["-DFFT_RMAX=2304", "-DFFT_COLUMNS=1"]
    assert build_defines("pixels.cl") == []


def test_the_python_side_reads_the_build_defines():
    assert direct.VEC_ROWS == PROGRAM_DEFINES["direct.cl"]["VEC_ROWS"] and direct.VEC_ROWS in direct.ROW_CHOICES
    assert separable.SEP_ROWS == PROGRAM_DEFINES["separable.cl"]["COL_ROWS"]
    assert separable.SEP_ROWS in separable.COLUMN_ROWS
    assert direct.BANK == PROGRAM_DEFINES["bank.cl"]["BANK"]
    assert fft.MAX_RADIX["columns"] == PROGRAM_DEFINES["fft.cl"]["FFT_RMAX"]


def test_programs_build_with_their_defines(runtime):
    """Each program, and a variant with another value, builds through the runtime (the .cl files
    stop with #error where a define is missing)."""
    from clconv.resources import variant

    for cl_file in PROGRAM_DEFINES:
        assert runtime.program(cl_file) is not None
    assert runtime.program(variant("direct.cl", VEC_ROWS=4)) is not runtime.program("direct.cl")


# ---------------------------------------------------------------- defines that stay in cl/*.cl
def test_tile_sizes_fixed_by_the_programs_code_match_python():
    """Vector widths the kernels' code is written for (a float16 is 16 values)."""
    assert {"float32": number("direct.cl", "VEC_W_float"), "uint8": number("direct.cl", "VEC_W_uchar"),
            "uint16": number("direct.cl", "VEC_W_ushort")} == direct.VEC_W
    assert number("bank.cl", "BANK_W") == direct.BANK_W
    assert number("separable.cl", "SEP_W") == separable.SEP_W
    assert number("gemm.cl", "GEMM_MR") == gemm.ROWS
    assert number("gemm.cl", "GEMM_PANEL") == gemm.PANEL
    columns, passes = (int(v) for v in defines("fft.cl")["FFT_VW"])  # #ifdef FFT_COLUMNS, then #else
    assert {"columns": columns, "passes": passes} == fft.VW
    # rows are padded to whole transpose blocks: 16x16 per work-item (columns), FFT_TILE (passes)
    assert number("fft.cl", "FFT_TILE") == fft.PITCH == columns


def test_fft_radices_are_the_programs_dfts():
    """The sub-radices the planner uses are the DFTs cl/fft.cl switches between (FFT_BY_RADIX, its
    default case the largest)."""
    source = (ROOT / "cl" / "fft.cl").read_text()
    body = source[source.index("#define FFT_BY_RADIX"):]
    body = body[: body.index("}")]
    cases = {int(c) for c in re.findall(r"case (\d+):", body)}
    (default,) = (int(d) for d in re.findall(r"default: BODY\((\d+)\)", body))
    assert cases | {default} == set(fft.SUB_RADICES) and default == max(fft.SUB_RADICES) == fft.MAX_RADIX["passes"]
    for radix in fft.SUB_RADICES:
        assert f"fft_dft{radix}(" in source


def test_border_codes_match_common_cl():
    names = {name: f"BORDER_{name.upper()}" for name in BORDER_CODES}
    assert {name: number("common.cl", define) for name, define in names.items()} == BORDER_CODES


def test_the_probe_runs_both_of_directs_kernels():
    """The runtime's first launch is sized so that one interior tile fits and a frame is left."""
    from clconv.runtime import PROBE_SHAPE

    interior = direct.split_interior(PROBE_SHAPE, PROBE_SHAPE, (3, 3), 1, (1, 1),
                                     (direct.VEC_ROWS, direct.VEC_W["float32"]))
    assert interior is not None and direct.frame_of(interior, *PROBE_SHAPE)[1] > 0


# ---------------------------------------------------------------- sample types
def kernel_names(runtime, cl_file: str) -> set[str]:
    return set(runtime.program(cl_file).get_info(runtime.cl.program_info.KERNEL_NAMES).split(";"))


def test_every_sample_types_kernels_exist(runtime):
    """The names built from TYPE_CODES are kernels of the programs (built on this device)."""
    assert set(TYPE_CODES) == set(SAMPLE_TYPES) == set(constants.MAX_VALUE)
    pixels, by_direct, by_separable = (kernel_names(runtime, f) for f in ("pixels.cl", "direct.cl", "separable.cl"))
    for sample in SAMPLE_TYPES:
        code = TYPE_CODES[sample]
        assert {f"unpack_{code}", f"pack_{code}"} <= pixels
        assert {f"row_pass_vec_{code}", f"row_pass_vec_{code}_pair", f"row_pass_vec_{code}_edge",
                f"column_pass_vec_{code}"} <= by_separable
        for other in SAMPLE_TYPES:
            name = direct.vec_kernel_name(sample, other)
            assert {name, "correlate_edge" + name[len("correlate_vec"):]} <= by_direct, (sample, other)


def test_max_value_takes_any_form_of_a_dtype():
    assert constants.max_value(np.uint8) == constants.max_value("uint8") == 255.0
    assert constants.max_value(np.dtype(np.uint16)) == 65535.0
    assert constants.max_value(np.float32) == 1.0


# ---------------------------------------------------------------- one home
# Modules still holding copies, whose owners are rewriting them (they are to import clconv.constants).
NOT_YET = {"imageio.py", "imageio"}


def library_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] not in NOT_YET and path.name != "constants.py":
            yield path, relative


def test_range_maxima_have_one_home():
    """No module but clconv.constants writes 255 or 65535 as a number (docstrings may say them)."""
    for path, relative in library_modules():
        numbers = [node.lineno for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)
                   and type(node.value) in (int, float) and node.value in (255, 65535)]
        assert not numbers, f"clconv/{relative} lines {numbers}: use clconv.constants.MAX_VALUE"


def imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The clconv modules ``path`` imports, anywhere in it: ``from clconv.algorithms import direct``
    is clconv.algorithms.direct (its package's __init__ is not counted as imported)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = module.rsplit(".", node.level)[0]
            node_module = f"{base}.{node.module}" if node.module else base
        elif isinstance(node, ast.ImportFrom):
            node_module = node.module or ""
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
            continue
        else:
            continue
        submodules = {f"{node_module}.{a.name}" for a in node.names} & known
        found |= submodules
        if len(submodules) < len(node.names) and node_module in known:
            found.add(node_module)
    return found - {module}


def test_no_import_cycles():
    """Between clconv's modules, counting the imports inside functions too."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: imports(path, name, set(modules)) for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name, trail):
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                cycle = trail[trail.index(other):] + [other]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, trail + [other])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
