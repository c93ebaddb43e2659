"""``-`` for standard input and output in ``clconv apply``: the installed script in a real pipe
(the issue's command line), and the rules in-process: --format needed and checked, bad input
named <stdin> with exit 2 and nothing on stdout, warnings naming <stdout>, no temporary left."""
from __future__ import annotations

import io
import os
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage

from clconv.cli import cli
from oracle import assert_matches, reference


@pytest.fixture
def photo(tmp_path) -> bytes:
    rng = np.random.default_rng(9)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 256, (21, 34, 3), dtype=np.uint8)).save(buf, format="PNG")
    (tmp_path / "in.png").write_bytes(buf.getvalue())
    return buf.getvalue()


def invoke(args, data: bytes = b"", tmp_path=None, monkeypatch=None):
    if monkeypatch is not None:  # the temporaries land here, so the test can see none is left
        monkeypatch.setenv("TMPDIR", str(tmp_path))
        import tempfile
        monkeypatch.setattr(tempfile, "tempdir", None)
    result = CliRunner().invoke(cli, [str(a) for a in args], input=data)
    return result.exit_code, result.stdout_bytes, result.stderr


def pixels(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def test_the_installed_script_filters_a_pipe(clconv_script, photo, tmp_path):
    """clconv apply -k blur - - --format png < in.png > out.png"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    r = subprocess.run([clconv_script, "apply", "-k", "blur", "-", "-", "--format", "png"], input=photo,
                       capture_output=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stderr == b""
    src = pixels(photo)
    assert_matches(pixels(r.stdout), reference(src, "blur"), src.dtype)
    # bad input on stdin: the usual one line, exit 2, nothing on stdout
    r = subprocess.run([clconv_script, "apply", "-k", "blur", "-", "-", "--format", "png"], input=b"not an image",
                       capture_output=True, env=env, timeout=300)
    assert (r.returncode, r.stdout) == (2, b"")
    assert r.stderr.decode() == "clconv: error: <stdin>: not an image (cannot identify image file)\n"


@pytest.mark.parametrize("fmt, pillow_format", [("png", "PNG"), ("jpg", "JPEG"), (".tif", "TIFF"), ("PGM", "PPM")])
def test_stdout_takes_the_format_given(photo, tmp_path, monkeypatch, fmt, pillow_format):
    code, out, err = invoke(["apply", "-k", "sharpen", tmp_path / "in.png", "-", "--format", fmt],
                            tmp_path=tmp_path, monkeypatch=monkeypatch)
    assert code == 0
    with PILImage.open(io.BytesIO(out)) as im:
        assert im.format == pillow_format and im.size == (34, 21)
    if fmt == "PGM":  # a warning names <stdout>, never the temporary file
        assert err == "clconv: warning: <stdout>: PGM holds gray only; RGB converted to luminance (ITU-R 601-2)\n"
    assert sorted(os.listdir(tmp_path)) == ["in.png"]  # no temporary left


def test_stdin_into_a_file_equals_the_file_into_a_file(photo, tmp_path, monkeypatch):
    assert invoke(["apply", "-k", "emboss", "-", tmp_path / "a.png"], photo, tmp_path, monkeypatch)[0] == 0
    assert invoke(["apply", "-k", "emboss", tmp_path / "in.png", tmp_path / "b.png"])[0] == 0
    a, b = (pixels((tmp_path / n).read_bytes()) for n in ("a.png", "b.png"))
    np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png", "in.png"]


@pytest.mark.parametrize("args, data, line", [
    (["-", "-"], None, "clconv: error: --format: OUTPUT - (standard output) needs --format (png, jpg, tif, ...)"),
    (["IN", "out.jpg", "--format", "png"], None,
     "clconv: error: --format: png disagrees with OUTPUT out.jpg (its extension decides its format)"),
    (["-", "-", "--format", "png"], b"", "clconv: error: <stdin>: empty file (not an image)"),
    (["-", "-", "--format", "png"], b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
     "clconv: error: <stdin>: damaged image header (Truncated File Read)"),
    (["-", "-", "--format", "xyz"], "PHOTO", "clconv: error: <stdout>: unknown output format '.xyz' (use .png, .jpg, .tif, ...)"),
    (["-", "-", "--format", "png", "--dtype", "float32"], "PHOTO",
     "clconv: error: <stdout>: float output needs .tif/.tiff or .npy"),
])
def test_bad_use_and_bad_input_exit_2_with_one_line_and_nothing_written(photo, tmp_path, monkeypatch, args, data,
                                                                         line):
    args = [str(tmp_path / "in.png") if a == "IN" else a for a in args]
    code, out, err = invoke(["apply", "-k", "blur", *args], photo if data == "PHOTO" else data or b"",
                            tmp_path, monkeypatch)
    assert (code, out) == (2, b"")
    assert err.splitlines() == [line]
    assert sorted(os.listdir(tmp_path)) == ["in.png"]
