"""Messages that name the right thing, in the right order (issue 12): through the command line (run_cli)."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from test_cli import assert_one_error_line


def _png(path, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(path)
    return path


def test_a_missing_input_is_reported_before_an_existing_output(run_cli, tmp_path):
    out = _png(tmp_path / "out.png")
    result = run_cli("apply", "-k", "sharpen", tmp_path / "missing.png", out)
    assert_one_error_line(result, 2, "missing.png", "No such file")
    assert "exists" not in result.stderr


def test_border_value_without_the_constant_border_is_refused(run_cli, tmp_path):
    src = _png(tmp_path / "in.png")
    for border in ("reflect", "wrap"):
        result = run_cli("apply", "-k", "sharpen", "--border", border, "--border-value", "5", src,
                            tmp_path / "out.png")
        assert_one_error_line(result, 2, "--border-value", border)
    assert not (tmp_path / "out.png").exists()
    ok = run_cli("apply", "-k", "sharpen", "--border", "constant", "--border-value", "5", src, tmp_path / "out.png")
    assert ok.returncode == 0, ok.stderr


def test_batch_names_the_output_that_exists(run_cli, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    dst.mkdir()
    _png(src / "IMG_0001.PNG")
    _png(dst / "IMG_0001.png", seed=1)  # the output that exists
    report = tmp_path / "report.json"
    result = run_cli("batch", "-k", "sharpen", "--format", "png", "--report", report, src, dst)
    assert result.returncode != 0
    line = next(l for l in result.stderr.splitlines() if "exists" in l)
    assert "out/IMG_0001.png" in line and "in/IMG_0001.PNG" not in line, line
    record = json.loads(report.read_text())
    errors = [f.get("error") for f in record.get("files", []) if f.get("error")]
    assert errors and all("IMG_0001.png" in e for e in errors), errors


def test_batch_without_recursive_says_how_many_subfolders_it_passed_over(run_cli, tmp_path):
    src = tmp_path / "in"
    for sub in ("a", "b"):
        (src / sub).mkdir(parents=True)
        _png(src / sub / "x.png")
    _png(src / "top.png")
    result = run_cli("batch", "-k", "sharpen", src, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "passed over 2 subfolders" in result.stderr and "--recursive" in result.stderr
    recursive = run_cli("batch", "-r", "-k", "sharpen", src, tmp_path / "out2")
    assert "passed over" not in recursive.stderr


def test_the_batch_report_holds_the_roots_options_device_and_each_files_warnings(run_cli, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rgba = np.random.default_rng(2).integers(0, 256, (10, 14, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(src / "cutout.png")  # to JPEG: alpha composited, with a warning
    _png(src / "plain.png")
    report = tmp_path / "report.json"
    result = run_cli("batch", "-k", "sharpen", "--format", "jpg", "--quality", "80", "--report", report,
                        src, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    record = json.loads(report.read_text())
    settings = record["settings"]
    assert settings["input_folder"].endswith("in") and settings["output_folder"].endswith("out")
    assert settings["quality"] == 80 and settings["format"] == "jpg" and settings["recursive"] is False
    assert settings["subfolders_passed_over"] == ["sub"] and settings["device"] and record["clconv"]
    files = {f["input"]: f for f in record["files"]}
    assert files["plain.png"]["warnings"] == []
    said = files["cutout.png"]["warnings"]
    assert said and any("alpha" in w for w in said), said
    assert all(w in result.stderr for w in said)  # recorded as well as said


def test_options_the_output_format_does_not_use_are_said_to_be_ignored(run_cli, tmp_path):
    src = _png(tmp_path / "in.png")
    png = run_cli("apply", "-k", "sharpen", "--quality", "80", "--compression", "lzw", src, tmp_path / "out.png")
    assert png.returncode == 0, png.stderr
    assert "--quality does not apply to PNG" in png.stderr and "--compression does not apply to PNG" in png.stderr
    jpg = run_cli("apply", "-k", "sharpen", "--quality", "80", src, tmp_path / "out.jpg")
    assert jpg.returncode == 0 and "ignored" not in jpg.stderr, jpg.stderr
    folder = tmp_path / "folder"
    folder.mkdir()
    _png(folder / "a.png")
    batch = run_cli("batch", "-k", "sharpen", "--format", "png", "--quality", "70", folder, tmp_path / "out")
    assert batch.returncode == 0 and batch.stderr.count("--quality does not apply to PNG") == 1, batch.stderr
