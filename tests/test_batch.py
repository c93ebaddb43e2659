"""`clconv batch`: trees, patterns, formats, resuming, bad files, interruption, and the report. The
command line runs in this process (run_cli); the installed script where the test is about a process
of its own (signals) or a hang. Every good output is checked against the float64 oracle."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oracle import assert_matches, reference

KERNEL = "gaussian:sigma=1"


def write_png(path: Path, shape=(37, 53, 3), seed=0, mode=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path)
    return pixels


def decoded(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image.load()
        a = np.asarray(image)
    return a[:, :, None] if a.ndim == 2 else a


def assert_filtered(source: Path, output: Path, kernel=KERNEL, **options):
    """``output`` holds ``source`` filtered by ``kernel``, against the float64 oracle."""
    pixels = decoded(source)
    has_alpha = pixels.shape[2] in (2, 4)
    ref = reference(pixels, kernel, alpha="keep" if has_alpha else None, **options)
    assert_matches(decoded(output), ref, str(output))


def all_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def temporaries(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob(".clconv-*")]


def interrupt_when(cmd: list, done, at_least: int, sig=signal.SIGINT, env=None, poll=0.02) -> tuple[int, str, float]:
    """Start ``cmd``, wait until ``done()`` (outputs so far) reaches ``at_least`` while it still
    runs, send ``sig``: (exit code, stderr, seconds from the signal to the exit). A shell starts
    background jobs with SIGINT ignored, and children inherit that: it is restored to the
    default, as a terminal's Ctrl-C finds it."""
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and done() < at_least and proc.poll() is None:
        time.sleep(poll)
    assert proc.poll() is None, "the run finished before it could be interrupted; make the tree bigger"
    sent = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr, time.monotonic() - sent


@pytest.fixture()
def tree(tmp_path) -> Path:
    """A nested tree: images at three depths, in gray, RGB and RGBA, plus files that are not images."""
    root = tmp_path / "in"
    write_png(root / "a.png", seed=1)
    write_png(root / "gray.png", shape=(20, 31), seed=2, mode="L")
    write_png(root / "sub" / "b.png", shape=(16, 16, 4), seed=3)
    write_png(root / "sub" / "deeper" / "c.png", shape=(9, 40, 3), seed=4)
    (root / "readme.txt").write_text("not an image")
    (root / "sub" / "data.csv").write_text("1,2,3")
    return root


def test_recursive_tree_is_mirrored_exactly_and_matches_the_oracle(run_cli, tree, tmp_path):
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    result = run_cli("batch", "-r", "-k", KERNEL, tree, out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    images = ["a.png", "gray.png", "sub/b.png", "sub/deeper/c.png"]
    assert all_files(out) == images
    for rel in images:
        assert_filtered(tree / rel, out / rel)
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before  # inputs untouched
    # Not a terminal: nothing but the summary on stdout.
    assert result.stdout.count("\n") == 1 and "4 written, 0 failed, 0 skipped" in result.stdout


def test_without_recursive_only_the_top_folder(run_cli, tree, tmp_path):
    out = tmp_path / "out"
    result = run_cli("batch", "-k", KERNEL, tree, out)
    assert result.returncode == 0, result.stderr
    assert all_files(out) == ["a.png", "gray.png"]


def test_patterns_select_by_name_case_insensitively(run_cli, tree, tmp_path):
    write_png(tree / "sub" / "UPPER.PNG", seed=5)
    out = tmp_path / "out"
    result = run_cli("batch", "-r", "--pattern", "*.png", "--pattern", "c.*", "-k", KERNEL, tree, out)
    assert result.returncode == 0, result.stderr
    assert all_files(out) == ["a.png", "gray.png", "sub/UPPER.PNG", "sub/b.png", "sub/deeper/c.png"]
    out2 = tmp_path / "out2"
    result = run_cli("batch", "-r", "--pattern", "[ab].png", "-k", KERNEL, tree, out2)
    assert result.returncode == 0, result.stderr
    assert all_files(out2) == ["a.png", "sub/b.png"]


def test_a_pattern_that_names_non_images_makes_them_fail(run_cli, tree, tmp_path):
    out = tmp_path / "out"
    result = run_cli("batch", "-r", "--pattern", "*.txt", "--pattern", "a.png", "-k", KERNEL, tree, out)
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("clconv: error: ") and "readme.txt" in errors[0]
    assert all_files(out) == ["a.png"]


def test_format_converts_every_output(run_cli, tmp_path):
    root = tmp_path / "in"
    write_png(root / "a.png", seed=1)
    write_png(root / "b.tif", seed=2)
    write_png(root / "photo.jpg", seed=3)
    out = tmp_path / "out"
    result = run_cli("batch", "--format", "bmp", "-k", KERNEL, root, out)
    assert result.returncode == 0, result.stderr
    assert all_files(out) == ["a.bmp", "b.bmp", "photo.bmp"]
    for name in ("a.png", "b.tif", "photo.jpg"):
        with Image.open(out / (Path(name).stem + ".bmp")) as image:
            assert image.format == "BMP"
        assert_filtered(root / name, out / (Path(name).stem + ".bmp"))


def test_two_inputs_with_one_output_name_fail_the_second(run_cli, tmp_path):
    root = tmp_path / "in"
    write_png(root / "a.png", seed=1)
    write_png(root / "a.tif", seed=2)
    out = tmp_path / "out"
    result = run_cli("batch", "--format", "png", "-k", KERNEL, root, out)
    assert result.returncode == 1
    assert "a.tif" in result.stderr and "same output" in result.stderr
    assert_filtered(root / "a.png", out / "a.png")


def test_existing_outputs_skip_fail_or_are_forced(run_cli, tree, tmp_path):
    out = tmp_path / "out"
    assert run_cli("batch", "-r", "-k", KERNEL, tree, out).returncode == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    time.sleep(0.01)

    skipped = run_cli("batch", "-r", "--skip-existing", "-k", KERNEL, tree, out, "--report", tmp_path / "r.json")
    assert skipped.returncode == 0, skipped.stderr
    assert "0 written, 0 failed, 4 skipped" in skipped.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    report = json.loads((tmp_path / "r.json").read_text())
    assert [f["status"] for f in report["files"]] == ["skipped"] * 4

    refused = run_cli("batch", "-r", "-k", KERNEL, tree, out)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 4 and all("exists" in line for line in lines)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps

    forced = run_cli("batch", "-r", "--force", "-k", "box:size=3", tree, out)
    assert forced.returncode == 0, forced.stderr
    assert_filtered(tree / "sub" / "deeper" / "c.png", out / "sub" / "deeper" / "c.png", kernel="box:size=3")


def write_bad_files(root: Path, good: Path) -> dict[str, str]:
    """Bad inputs beside good ones: name -> a word its error must contain."""
    data = good.read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("this is not a picture\n")
    broken_crc = bytearray(data)
    broken_crc[40] ^= 0xFF  # inside IDAT
    (root / "crc.png").write_bytes(bytes(broken_crc))
    (root / "dangling.png").symlink_to(root / "missing-target.png")
    return {"truncated.png": "", "empty.png": "empty", "text.png": "", "crc.png": "", "dangling.png": ""}


def test_bad_files_are_listed_and_the_good_ones_written(run_cli, tmp_path):
    root = tmp_path / "in"
    for i in range(5):
        write_png(root / f"good{i}.png", seed=10 + i)
    bad = write_bad_files(root, root / "good0.png")
    out = tmp_path / "out"
    result = run_cli("batch", "-k", KERNEL, "--report", tmp_path / "r.json", root, out)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(bad), result.stderr
    for line, name in zip(lines, sorted(bad)):
        assert line.startswith("clconv: error: ") and name in line and bad[name] in line, line
    assert "Traceback" not in result.stderr
    assert all_files(out) == [f"good{i}.png" for i in range(5)]
    for i in range(5):
        assert_filtered(root / f"good{i}.png", out / f"good{i}.png")
    report = json.loads((tmp_path / "r.json").read_text())
    status = {f["input"]: (f["status"], f["error"]) for f in report["files"]}
    assert all(status[name][0] == "failed" and status[name][1] for name in bad)
    assert all(status[f"good{i}.png"] == ("ok", None) for i in range(5))
    assert report["summary"]["ok"] == 5 and report["summary"]["failed"] == len(bad)
    assert temporaries(tmp_path) == []


def test_report_holds_settings_and_relative_paths(run_cli, tree, tmp_path):
    out = tmp_path / "out"
    result = run_cli("batch", "-r", "-k", "sharpen", "--border", "wrap", "--format", "png",
                        "--report", tmp_path / "run.json", tree, out)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run.json").read_text())
    from clconv import __version__

    assert report["clconv"] == __version__
    settings = report["settings"]
    assert settings["kernels"] == [{"spec": "sharpen", "weights": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]}]
    assert settings["border"] == "wrap" and settings["algorithm"] == "auto" and settings["device"]
    assert settings["format"] == "png"
    files = report["files"]
    assert [f["input"] for f in files] == ["a.png", "gray.png", "sub/b.png", "sub/deeper/c.png"]
    assert [f["output"] for f in files] == ["a.png", "gray.png", "sub/b.png", "sub/deeper/c.png"]
    assert files[0]["pixels"] == 37 * 53 and files[0]["seconds"] >= 0
    assert report["summary"]["ok"] == 4 and report["summary"]["seconds"] > 0
    assert_filtered(tree / "a.png", out / "a.png", kernel="sharpen", border="wrap")


def test_out_dir_inside_in_dir_is_never_read(run_cli, tree):
    out = tree / "filtered"
    first = run_cli("batch", "-r", "-k", KERNEL, tree, out)
    assert first.returncode == 0, first.stderr
    assert "4 written" in first.stdout
    again = run_cli("batch", "-r", "--skip-existing", "-k", KERNEL, tree, out, "--report", tree / "r.json")
    assert again.returncode == 0, again.stderr
    report = json.loads((tree / "r.json").read_text())
    assert not any(f["input"].startswith("filtered") for f in report["files"])
    assert not (out / "filtered").exists()


def test_out_dir_equal_to_or_holding_in_dir_is_refused(run_cli, tree):
    for out in (tree, tree.parent):
        result = run_cli("batch", "-k", KERNEL, tree, out)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and "IN_DIR" in result.stderr


def test_symlinks_files_followed_folders_not_and_loops_do_not_hang(run_clconv, tree, tmp_path):
    # The installed script: a loop that hung would fail on the timeout instead of stopping the suite.
    elsewhere = tmp_path / "elsewhere"
    write_png(elsewhere / "linked.png", seed=9)
    (tree / "linked.png").symlink_to(elsewhere / "linked.png")
    (tree / "sub" / "loop").symlink_to(tree, target_is_directory=True)
    (tree / "folder-link").symlink_to(elsewhere, target_is_directory=True)
    out = tmp_path / "out"
    result = run_clconv("batch", "-r", "-k", KERNEL, tree, out, timeout=120)
    assert result.returncode == 0, result.stderr
    assert all_files(out) == ["a.png", "gray.png", "linked.png", "sub/b.png", "sub/deeper/c.png"]
    assert not (out / "linked.png").is_symlink()
    assert_filtered(elsewhere / "linked.png", out / "linked.png")


def test_undecodable_file_names_are_escaped_not_a_crash(run_cli, tmp_path):
    root = tmp_path / "in"
    write_png(root / "plain.png", seed=1)
    odd = os.fsencode(root) + b"/caf\xe9.png"
    with open(odd, "wb") as f:
        f.write((root / "plain.png").read_bytes())
    out = tmp_path / "out"
    result = run_cli("batch", "-k", KERNEL, "--report", tmp_path / "r.json", root, out)
    assert result.returncode == 0, result.stderr
    assert os.path.exists(os.fsencode(out) + b"/caf\xe9.png")
    report = json.loads((tmp_path / "r.json").read_text())
    assert sorted(f["input"] for f in report["files"]) == ["caf\\xe9.png", "plain.png"]


@pytest.mark.parametrize("args, fragment", [
    (["-k", "no-such-kernel"], "no-such-kernel"),
    (["-k", KERNEL, "--format", "xyz"], "--format"),
    (["-k", KERNEL, "--jobs", "0"], "--jobs"),
    (["-k", KERNEL, "--skip-existing", "--force"], "--skip-existing"),
    (["-k", KERNEL, "--device", "no-such-device"], "no-such-device"),
])
def test_bad_usage_is_exit_2_before_any_file_is_touched(run_cli, tree, tmp_path, args, fragment):
    out = tmp_path / "out"
    result = run_cli("batch", *args, tree, out)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clconv: error: ") and fragment in lines[0], result.stderr
    assert not out.exists()


def test_missing_or_empty_in_dir_is_exit_2(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    for folder in (tmp_path / "missing", tmp_path / "empty"):
        result = run_cli("batch", "-k", KERNEL, folder, tmp_path / "out")
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and str(folder) in result.stderr


def test_quiet_prints_only_failures(run_cli, tree, tmp_path):
    (tree / "bad.png").write_text("nope")
    result = run_cli("batch", "-q", "-k", KERNEL, tree, tmp_path / "out")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "bad.png" in result.stderr


BIG_TREE_COUNT = 60


BIG_KERNEL = ("-k", "gaussian:sigma=2", "--border", "wrap")


def big_base() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(192, 256, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory) -> Path:
    """60 PNGs in three folders, read only (both signals' runs share it): enough that a run is
    still going when its fifth output appears (about 1 s of work left at 60 images/s on 2 cores,
    against the 20 ms the test polls at). Image i is big_base() rolled i columns."""
    root = tmp_path_factory.mktemp("big") / "in"
    base = big_base()
    for i in range(BIG_TREE_COUNT):
        folder = root / f"d{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(base, i, axis=1)).save(folder / f"img{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def big_reference():
    """The oracle for every image of big_tree, made once: with the wrap border, filtering commutes
    with rolling the image, so image i's reference is big_base()'s rolled i columns."""
    ref = reference(big_base(), "gaussian:sigma=2", "wrap")

    def of(path: Path):
        shift = int(path.stem[3:])
        arrays = ("expected", "raw", "tol", "lower", "upper")
        return dataclasses.replace(ref, **{name: np.roll(getattr(ref, name), shift, axis=1) for name in arrays})

    return of


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_leaves_no_partial_file_and_a_rerun_finishes(clconv_script, run_cli, big_tree,
                                                                     big_reference, tmp_path, sig, code):
    root, out = big_tree, tmp_path / "out"
    scratch = tmp_path / "tmp"  # where the run keeps pixels in transit: must be left empty
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    cmd = [clconv_script, "batch", "-r", *BIG_KERNEL, "--jobs", "2", "--report", tmp_path / "r.json", root, out]
    returncode, stderr, stopped_in = interrupt_when(cmd, lambda: len(list(out.rglob("img*.png"))), 5, sig, env)
    assert returncode == code, stderr
    assert stopped_in < 3.0, f"took {stopped_in:.1f} s to stop"
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("clconv: error: ")
    assert temporaries(tmp_path) == [] and temporaries(root) == [] and list(scratch.iterdir()) == []
    written = sorted(out.rglob("*.png"))
    assert 5 <= len(written) < BIG_TREE_COUNT
    for path in written:  # every file there is complete and right
        assert_matches(decoded(path), big_reference(path), str(path))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["interrupted"] is True and report["summary"]["ok"] == len(written)

    rerun = run_cli("batch", "-r", *BIG_KERNEL, "--jobs", "2", "--skip-existing", root, out)  # in-process
    assert rerun.returncode == 0, rerun.stderr
    assert f"{BIG_TREE_COUNT - len(written)} written, 0 failed, {len(written)} skipped" in rerun.stdout
    assert len(list(out.rglob("*.png"))) == BIG_TREE_COUNT
    for path in sorted(out.rglob("*.png")):
        assert_matches(decoded(path), big_reference(path), str(path))


# --------------------------------------------------------------------------------------------------
# The library: discovery, and the progress bar on a stream that stands for a terminal
# --------------------------------------------------------------------------------------------------


def test_find_inputs_default_extensions_and_exclusions(tree, tmp_path):
    from clconv.batch import find_inputs

    (tree / ".clconv-0123abcd.png").write_bytes(b"temporary of an interrupted writer")
    os.mkfifo(tree / "pipe.png")
    found = find_inputs(str(tree), str(tree / "sub"), True, ())
    assert found == ["a.png", "gray.png"]  # sub/ is OUT_DIR here; temporaries and FIFOs are never inputs


def test_progress_bar_on_a_terminal_stream(runtime, tree, tmp_path):
    from clconv import batch
    from clconv.files import FilterOptions

    stream = io.StringIO()
    result = batch.run(str(tree), str(tmp_path / "out"), FilterOptions(kernels=(KERNEL,)), recursive=True,
                       jobs=1, progress_stream=stream)
    assert result.summary()["ok"] == 4
    text = stream.getvalue()
    assert "\r[" in text and "4/4 files" in text and "images/s" in text and text.endswith("\n")


def test_a_deep_tmpdir_still_starts_the_workers(run_cli, tmp_path, monkeypatch):
    """The fork server's socket lives in $TMPDIR and a Unix socket path holds 107 bytes: a deeper
    TMPDIR (pytest's own under xdist, say) used to be an internal error; now the pool spawns."""
    import tempfile

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.full((9, 7, 3), 40 * i, np.uint8)).save(src / f"f{i}.png")
    r = run_cli("batch", "-q", "-k", KERNEL, "--jobs", "2", src, tmp_path / "out")
    assert (r.returncode, r.stderr) == (0, "")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    assert list(deep.iterdir()) == []  # scratch files gone
