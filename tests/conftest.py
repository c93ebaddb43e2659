"""Session-wide set-up: one OpenCL runtime (real PoCL device, no mocks) and the installed script."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


# Results never depend on a tuning cache, but auto's choices (which --explain and the rule
# tests check) do: the suite runs on the built-in model unless a test points clconv at its own
# cache (tests/test_tuning.py). Set before any test, so subprocesses inherit it too.
os.environ["CLCONV_TUNING"] = "0"


@pytest.fixture(scope="session")
def runtime():
    """The device the tests run on: CLCONV_TEST_DEVICE, else clconv's default choice."""
    from clconv.runtime import get_runtime

    return get_runtime(os.environ.get("CLCONV_TEST_DEVICE") or None)


@pytest.fixture(scope="session")
def clconv_script() -> str:
    """The installed console script (next to this Python, else on PATH). Missing is a failure, not a skip."""
    beside = Path(sys.executable).with_name("clconv")
    found = str(beside) if beside.exists() else shutil.which("clconv")
    assert found, "the clconv console script is not installed (pip install '.[test]')"
    return found


@pytest.fixture(scope="session")
def run_clconv(clconv_script):
    """Run the installed script; returns CompletedProcess with text stdout/stderr."""

    def run(*args, cwd=None, timeout=300):
        env = dict(os.environ)
        env.pop("PYTHONWARNINGS", None)
        return subprocess.run([clconv_script, *map(str, args)], capture_output=True, text=True,
                              cwd=cwd, timeout=timeout, env=env, stdin=subprocess.DEVNULL)

    return run
