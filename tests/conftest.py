"""Session-wide set-up: one OpenCL runtime (real PoCL device, no mocks), clconv's command line in
this process (run_cli), and the installed script (run_clconv)."""
from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
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


@dataclass
class CliResult:
    """What a run of the command line left: the fields of subprocess.CompletedProcess the tests read."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture()
def run_cli(monkeypatch):
    """Run clconv's command line in this process (click's CliRunner: no interpreter start, no device
    to open again), as ``run_clconv`` does the installed script: exit code, stdout and stderr apart.
    ``cwd`` and ``env`` go through monkeypatch, so they are undone after the test. The console
    script's own start (main(): the device thread, the device cache, os._exit) is not run here:
    tests/test_script_smoke.py and tests/test_fast_start.py run the installed script for that."""
    from click.testing import CliRunner

    from clconv.cli import cli

    # click 8.1 mixes stderr into stdout unless told; from 8.2 they are always apart.
    separate = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}

    def run(*args, cwd=None, env=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, str(value))
        result = CliRunner(**separate).invoke(cli, [str(a) for a in args], prog_name="clconv", catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run
