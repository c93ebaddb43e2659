"""Finds the OpenCL C sources: inside the installed wheel (clconv/cl) or the checkout's top-level cl/."""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path


@functools.cache
def cl_dir() -> Path:
    """The folder of the OpenCL sources: in the installed package, else the repository's cl/."""
    packaged = Path(str(files("clconv") / "cl"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "cl"


@functools.cache
def read_cl(name: str) -> str:
    """The text of one file of cl/ (read once)."""
    return (cl_dir() / name).read_text(encoding="utf-8")


def program_source(name: str) -> str:
    """A program's full source: the shared helpers, then the program itself (no -I paths needed)."""
    return read_cl("common.cl") + "\n#line 1\n" + read_cl(name)


def variant(cl_file: str, **defines) -> str:
    """The name of ``cl_file`` built with ``-DNAME=value`` for each define: Runtime.program
    builds and caches such a variant apart from the plain program."""
    return " ".join([cl_file, *(f"-D{k}={int(v)}" for k, v in sorted(defines.items()))])
