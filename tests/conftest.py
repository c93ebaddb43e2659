"""Session-wide set-up: one OpenCL runtime (real PoCL device, no mocks), clconv's command line in
this process (run_cli), the installed script (run_clconv), and a `dask scheduler` with two workers
(scheduler) for the cluster tests."""
from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# Results never depend on a tuning cache, but auto's choices (which --explain and the rule
# tests check) do: the suite runs on the built-in model unless a test points clconv at its own
# cache (tests/test_tuning.py). Set before any test, so subprocesses inherit it too.
os.environ["CLCONV_TUNING"] = "0"
# The Dask processes the tests start (conftest's scheduler, LocalClusters) sit idle between runs:
# without the 10 ms sampling profiler and the 20 ms event-loop tick, three of them idle at 0.03
# CPU seconds per second instead of 0.13 (a session holds them for about a minute).
os.environ.setdefault("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "False")
os.environ.setdefault("DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL", "1s")
os.environ.setdefault("DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL", "2s")


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


def dask_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dask")), *args]


@pytest.fixture(scope="session")
def scheduler(tmp_path_factory):
    """``tcp://127.0.0.1:PORT`` of a `dask scheduler` with two `dask worker` processes (one thread
    each), all subprocesses on random ports, stopped after the session. The tests that use it
    carry ``xdist_group("dask")``, so one pytest-xdist worker starts it, once."""
    pytest.importorskip("distributed")
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask")
    address_file = folder / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
    processes = [subprocess.Popen(dask_command("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                               "--scheduler-file", str(address_file)), **quiet)]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert address_file.exists(), "the scheduler did not start"
        for _ in range(2):
            processes.append(subprocess.Popen(dask_command("worker", "--scheduler-file", str(address_file),
                                                           "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                                                           "--local-directory", str(folder)), **quiet))  # fmt: skip
        address = json.loads(address_file.read_text())["address"]
        with Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(processes):  # the workers first: they leave at once while the scheduler is up
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
