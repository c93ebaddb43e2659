"""The wheel carries the OpenCL sources (an editable install would hide a missing line)."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_every_cl_source(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=300)
    wheel = next(tmp_path.glob("clconv-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.name for p in (ROOT / "cl").glob("*.cl"))
    assert sources, "cl/ holds no .cl files"
    for name in sources:
        assert f"clconv/cl/{name}" in names
    assert not any(n.startswith(("tests/", "samples/", "benchmarks/")) for n in names)
    assert "clconv/py.typed" in names  # type checkers read the package's annotations (PEP 561)
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


def test_installed_package_finds_its_sources():
    from clconv.resources import cl_dir, program_source

    assert (cl_dir() / "direct.cl").is_file()
    assert "map_index" in program_source("direct.cl")  # common.cl is prepended
