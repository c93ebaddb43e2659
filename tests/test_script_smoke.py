"""The installed console script and `python -m clconv`, each in a process of its own, as a user runs
them: the few things only a real process shows (the entry point, main()'s own start with its
device thread and os._exit, exit codes seen by the shell). Everything else about the command line
runs in this process (run_cli); tests/test_fast_start.py covers imports and the device cache."""
from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oracle import assert_matches, reference


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def png(tmp_path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(11).integers(0, 256, (29, 41, 3), dtype=np.uint8)).save(path)
    return path


def pixels_of(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_apply_writes_the_filtered_image_and_nothing_else(run_clconv, png, tmp_path):
    before = sha(png)
    out = tmp_path / "out.png"
    result = run_clconv("apply", "-k", "gaussian:sigma=1", "--border", "wrap", png, out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert_matches(pixels_of(out), reference(pixels_of(png), "gaussian:sigma=1", border="wrap"), str(out))
    assert sha(png) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


def test_batch_writes_every_image_and_its_summary(run_clconv, png, tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    png.rename(src / "a.png")
    Image.fromarray(np.full((9, 13), 200, np.uint8)).save(src / "sub" / "b.png")
    result = run_clconv("batch", "-r", "-k", "sharpen", src, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "2 written, 0 failed, 0 skipped" in result.stdout
    for rel in ("a.png", "sub/b.png"):
        assert_matches(pixels_of(tmp_path / "out" / rel), reference(pixels_of(src / rel), "sharpen"), rel)


def test_errors_exit_2_with_one_line_and_no_output(run_clconv, png, tmp_path):
    out = tmp_path / "out.png"
    for args, fragment in ((["-k", "sobelx", png, out], "sobelx"),  # before the image is read
                           (["-k", "box", tmp_path / "missing.png", out], "missing.png"),  # the device thread runs
                           (["-k", "box", "--no-such-option", png, out], "--no-such-option")):  # click's usage error
        result = run_clconv("apply", *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("clconv: error: "), result.stderr
        assert fragment in result.stderr and "Traceback" not in result.stderr
        assert not out.exists()


def test_help_lists_every_command(run_clconv):
    from clconv.cli import cli

    result = run_clconv("--help")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("Usage: clconv ")
    for name in cli.commands:
        assert f"  {name} " in result.stdout, name


def test_python_dash_m_clconv_is_the_same_program(run_clconv, png, tmp_path):
    version = subprocess.run([sys.executable, "-m", "clconv", "--version"], capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
    assert version.returncode == 0 and version.stdout == run_clconv("--version").stdout
    out = tmp_path / "out.png"
    apply = subprocess.run([sys.executable, "-m", "clconv", "apply", "-k", "sobel-x", str(png), str(out)],
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert apply.returncode == 0 and apply.stderr == "", apply.stderr
    assert_matches(pixels_of(out), reference(pixels_of(png), "sobel-x"), str(out))
    bad = subprocess.run([sys.executable, "-m", "clconv", "kernels", "nope"], capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and bad.stderr.startswith("clconv: error: "), bad.stderr


@pytest.mark.parametrize("sig, code, line", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_apply_stopped_by_a_signal_leaves_nothing_and_says_one_line(clconv_script, tmp_path, sig, code, line):
    """The signal is sent once --explain has named the algorithm, so the filter (seconds of 65x65
    direct on a 1600x1200 RGB image on a CPU) and the save are still ahead."""
    source = tmp_path / "in.npy"
    np.save(source, np.random.default_rng(5).integers(0, 256, (1200, 1600, 3), dtype=np.uint8))
    before = sha(source)
    cmd = [clconv_script, "apply", "--explain", "-k", "gaussian:sigma=8", "--algorithm", "direct",
           str(source), str(tmp_path / "out.png")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's
    assert proc.stderr is not None
    said = []
    for said_line in proc.stderr:
        said.append(said_line)
        if said_line.startswith("clconv: explain: gaussian:sigma=8: direct"):
            break
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == code, "".join(said) + rest
    assert rest.splitlines() == [f"clconv: error: {line}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]  # no output, no temporary
    assert sha(source) == before
