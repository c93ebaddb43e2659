"""clconv's command line: exit codes, one-line errors, nothing lost. Run in this process (run_cli);
tests/test_script_smoke.py runs the installed script itself."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)


def pixels_of(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_error_line(result, code: int, *names: str):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("clconv: error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert "Traceback" not in result.stderr + result.stdout


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture()
def rgb_png(tmp_path) -> Path:
    rng = np.random.default_rng(7)
    pixels = (rng.random((61, 83, 3)) * 255).astype(np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(pixels, "RGB").save(path)
    return path


def oracle_u8(pixels: np.ndarray, weights: np.ndarray, use_abs=False, mode="reflect") -> np.ndarray:
    planes = [ndi.correlate(pixels[..., c].astype(np.float64), weights, mode=mode) for c in range(pixels.shape[2])]
    out = np.stack(planes, axis=-1)
    return np.clip(np.rint(np.abs(out) if use_abs else out), 0, 255)


def test_apply_sobel_x_matches_oracle(run_cli, rgb_png, tmp_path):
    before = sha(rgb_png)
    out = tmp_path / "edges.png"
    result = run_cli("apply", "--kernel", "sobel-x", rgb_png, out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    got = pixels_of(out)
    ref = oracle_u8(pixels_of(rgb_png), SOBEL_X, use_abs=True)
    assert got.dtype == np.uint8 and got.shape == ref.shape
    assert np.abs(got.astype(int) - ref).max() <= 1
    assert sha(rgb_png) == before
    assert leftovers(tmp_path, {"in.png", "edges.png"}) == []


def test_apply_chain_and_options(run_cli, rgb_png, tmp_path):
    out = tmp_path / "chain.png"
    result = run_cli("apply", "-k", "box", "-k", "1 0 -1; 2 0 -2; 1 0 -1", "--border", "replicate",
                        "--scale", "0.5", "--bias", "100", rgb_png, out)
    assert result.returncode == 0, result.stderr
    pixels = pixels_of(rgb_png).astype(np.float64)
    box = np.full((3, 3), 1 / 9)
    planes = [ndi.correlate(ndi.correlate(pixels[..., c], box, mode="nearest"), -SOBEL_X, mode="nearest")
              for c in range(3)]
    ref = np.clip(np.rint(0.5 * np.stack(planes, -1) + 100), 0, 255)  # custom kernel: no default abs
    assert np.abs(pixels_of(out).astype(int) - ref).max() <= 1


def test_apply_float_npy_output_holds_raw_signed_values(run_cli, rgb_png, tmp_path):
    out = tmp_path / "raw.npy"
    result = run_cli("apply", "-k", "sobel-x", "--gray", rgb_png, out)
    assert result.returncode == 0, result.stderr
    got = np.load(out)
    gray = np.asarray(Image.fromarray(pixels_of(rgb_png)).convert("L")).astype(np.float64)
    ref = ndi.correlate(gray, SOBEL_X, mode="reflect")
    assert got.dtype == np.float32 and got.shape == gray.shape
    assert got.min() < 0  # raw: the edge detector's abs default is not applied to floats
    np.testing.assert_allclose(got, ref, atol=1e-4 * 255 * 8)


def test_force_overwrites_and_without_force_refuses(run_cli, rgb_png, tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    result = run_cli("apply", "-k", "box", rgb_png, out)
    assert_one_error_line(result, 2, str(out), "--force")
    assert out.read_bytes() == b"precious"
    result = run_cli("apply", "-k", "box", "--force", rgb_png, out)
    assert result.returncode == 0, result.stderr
    assert pixels_of(out).shape == (61, 83, 3)


@pytest.mark.parametrize("alias", ["same", "dot", "symlink", "hardlink"])
def test_output_equal_to_input_is_refused_even_with_force(run_cli, rgb_png, tmp_path, alias):
    before = sha(rgb_png)
    if alias == "same":
        target = str(rgb_png)
    elif alias == "dot":
        target = str(tmp_path / "." / ".." / tmp_path.name / "in.png")
    elif alias == "symlink":
        target = tmp_path / "link.png"
        os.symlink(rgb_png, target)
    else:
        target = tmp_path / "hard.png"
        os.link(rgb_png, target)
    result = run_cli("apply", "-k", "box", "--force", rgb_png, target)
    assert_one_error_line(result, 2, "input")
    assert sha(rgb_png) == before


def write_bad_inputs(folder: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = {
        "missing": folder / "missing.png",
        "truncated": folder / "truncated.png",
        "text": folder / "notes.png",
        "empty": folder / "empty.png",
    }
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text"].write_text("this is not a picture\n")
    files["empty"].write_bytes(b"")
    return files


@pytest.mark.parametrize("case", ["missing", "truncated", "text", "empty"])
def test_bad_image_is_one_line_exit_2_and_no_output(run_cli, rgb_png, tmp_path, case):
    bad = write_bad_inputs(tmp_path, rgb_png)[case]
    out = tmp_path / "out.png"
    existing = set(p.name for p in tmp_path.iterdir())
    result = run_cli("apply", "-k", "sobel-x", bad, out)
    assert_one_error_line(result, 2, bad.name)
    assert not out.exists()
    assert leftovers(tmp_path, existing) == []


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("sobelx", "unknown kernel"),
        ("1 2; 3", "ragged"),
        ("1 nan 1", "finite"),
        ("3x2: 1,2,3", ""),
        ("nonexistent-kernel.npy", "nonexistent-kernel.npy"),
    ],
)
def test_bad_kernel_spec_is_exit_2_before_reading_the_image(run_cli, rgb_png, tmp_path, spec, fragment):
    out = tmp_path / "out.png"
    result = run_cli("apply", "-k", spec, tmp_path / "missing-too.png", out)
    assert_one_error_line(result, 2, fragment)
    assert "missing-too.png" not in result.stderr  # the spec is checked first
    assert not out.exists()


def test_nan_weights_in_a_kernel_file(run_cli, rgb_png, tmp_path):
    kernel = tmp_path / "k.npy"
    np.save(kernel, np.array([[1.0, np.nan], [0.0, 1.0]]))
    result = run_cli("apply", "-k", kernel, rgb_png, tmp_path / "out.png")
    assert_one_error_line(result, 2, "k.npy", "finite")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--device", "no-such-device"], "--device no-such-device"),
        (["--border", "sideways"], "sideways"),
        (["--stride", "0"], "--stride"),
        (["--padding", "-3"], "--padding"),
        (["--dtype", "float32"], "out.png"),  # float output needs .tif/.npy
    ],
)
def test_bad_options_exit_2(run_cli, rgb_png, tmp_path, args, fragment):
    out = tmp_path / "out.png"
    result = run_cli("apply", "-k", "box", *args, rgb_png, out)
    assert_one_error_line(result, 2, fragment)
    assert not out.exists()


def test_usage_errors_are_one_line(run_cli, rgb_png):
    assert_one_error_line(run_cli("apply", rgb_png), 2, "Missing")
    assert_one_error_line(run_cli("apply", "-k", "box", "--no-such-option", rgb_png, "x.png"), 2, "--no-such-option")
    assert_one_error_line(run_cli("frobnicate"), 2, "frobnicate")


def test_output_folder_missing_is_exit_2(run_cli, rgb_png, tmp_path):
    out = tmp_path / "no" / "such" / "folder" / "out.png"
    assert_one_error_line(run_cli("apply", "-k", "box", rgb_png, out), 2, "out.png")


def test_debug_shows_traceback(run_cli, rgb_png, tmp_path):
    result = run_cli("apply", "--debug", "-k", "sobelx", rgb_png, tmp_path / "o.png")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("clconv: error: ")


def test_kernels_and_devices_commands(run_cli):
    listing = run_cli("kernels")
    assert listing.returncode == 0 and "sobel-x" in listing.stdout and "gaussian" in listing.stdout
    one = run_cli("kernels", "emboss")
    assert one.returncode == 0 and "-2" in one.stdout
    assert run_cli("kernels", "nope").returncode == 2
    devices = run_cli("devices")
    assert devices.returncode == 0, devices.stderr
    assert "*" in devices.stdout
    assert run_cli("--version").stdout.startswith("clconv")


def test_rgba_blur_keeps_alpha_and_has_no_dark_fringe(run_cli, tmp_path):
    pixels = np.zeros((40, 40, 4), np.uint8)  # transparent black around an opaque orange square
    pixels[10:30, 10:30] = (255, 160, 20, 255)
    src, out = tmp_path / "shape.png", tmp_path / "blurred.png"
    Image.fromarray(pixels, "RGBA").save(src)
    result = run_cli("apply", "-k", "gaussian:sigma=3", src, out)
    assert result.returncode == 0, result.stderr
    got = pixels_of(out)
    assert got.shape == (40, 40, 4)
    np.testing.assert_array_equal(got[..., 3], pixels[..., 3])  # alpha kept
    visible = got[..., 3] > 0
    assert np.all(np.abs(got[visible][:, :3].astype(int) - [255, 160, 20]) <= 1)  # no dark fringe


def test_sixteen_bit_stays_sixteen_bit(run_cli, tmp_path):
    ramp = (np.arange(50 * 70).reshape(50, 70) * 17 % 65536).astype(np.uint16)
    src, out = tmp_path / "g16.png", tmp_path / "o16.png"
    Image.fromarray(ramp).save(src)
    result = run_cli("apply", "-k", "box:size=5", src, out)
    assert result.returncode == 0, result.stderr
    got = pixels_of(out).astype(np.int64)
    ref = np.rint(ndi.correlate(ramp.astype(np.float64), np.full((5, 5), 1 / 25), mode="reflect"))
    with Image.open(out) as image:
        assert image.mode in ("I;16", "I")
    assert np.abs(got - ref).max() <= 1


def test_dtype_change_converts_between_ranges(run_cli, tmp_path):
    ramp = (np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)
    src, out = tmp_path / "g16.png", tmp_path / "g8.png"
    Image.fromarray(ramp).save(src)
    result = run_cli("apply", "-k", "identity", "--dtype", "uint8", src, out)
    assert result.returncode == 0, result.stderr
    got = pixels_of(out)
    assert got.dtype == np.uint8
    assert np.abs(got.astype(int) - np.rint(ramp * (255 / 65535))).max() <= 1
