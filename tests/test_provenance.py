"""The record outputs carry of how clconv made them (PNG "Software" text, a JPEG comment of its
own, the TIFF Software tag), --strip dropping it, and --skip-existing saying when an existing
output was made with other filter settings. Records are read back with Pillow directly, not
only with clconv's own reader."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage
from PIL import PngImagePlugin

import clconv
from clconv.cli import cli
from clconv.files import FilterOptions, provenance, settings_in
from clconv.imageio import read_provenance


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def records_in(path) -> list[str]:
    """Every clconv record Pillow finds in ``path`` (JPEG: all COM segments)."""
    with PILImage.open(path) as im:
        if im.format == "JPEG":
            values = [data.decode() for kind, data in im.applist if kind == "COM"]
        elif im.format == "PNG":
            values = [im.info.get("Software")]
        else:
            values = [im.tag_v2.get(305)]
    return [v for v in values if v and v.startswith("clconv ")]


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "photo.jpg"
    PILImage.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path, quality=90,
                                                                               comment=b"holiday 2026")
    return path


def test_describe_is_canonical_and_leaves_out_defaults():
    assert FilterOptions(kernels=("sharpen",)).describe() == "-k sharpen"
    assert FilterOptions(kernels=("sobel-x", "gaussian:sigma=2"), border="constant", border_value=5.0,
                         flip=True, abs=False, stride=2).describe() == (
        "-k sobel-x -k gaussian:sigma=2 --border constant --border-value 5.0 --stride 2 --flip --no-abs")
    # what does not change the pixels is not recorded
    assert FilterOptions(kernels=("blur",), algorithm="fft", device="cpu", max_pixels=7).describe() == "-k blur"
    assert FilterOptions(kernels=("1 2; 3 4",)).describe() == "-k '1 2; 3 4'"
    record = provenance(FilterOptions(kernels=("blur",)))
    assert record == f"clconv {clconv.__version__}: -k blur"
    assert settings_in(record) == "-k blur"
    assert settings_in("GIMP 2.10") is None and settings_in(None) is None


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_apply_records_how_the_output_was_made(photo, tmp_path, ext):
    out = tmp_path / f"out{ext}"
    code, _, err = run("apply", "-k", "sharpen", "--border", "constant", "--border-value", "5", photo, out)
    assert code == 0, err
    expected = f"clconv {clconv.__version__}: -k sharpen --border constant --border-value 5.0"
    assert records_in(out) == [expected]
    assert read_provenance(out) == expected


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_strip_drops_the_record(photo, tmp_path, ext):
    out = tmp_path / f"out{ext}"
    code, _, err = run("apply", "-k", "blur", "--strip", photo, out)
    assert code == 0, err
    assert records_in(out) == [] and read_provenance(out) is None


def test_a_jpeg_keeps_its_comment_beside_the_record_and_drops_an_old_record(photo, tmp_path):
    once, twice = tmp_path / "once.jpg", tmp_path / "twice.jpg"
    assert run("apply", "-k", "blur", photo, once)[0] == 0
    assert run("apply", "-k", "sharpen", once, twice)[0] == 0
    with PILImage.open(twice) as im:
        comments = [data for kind, data in im.applist if kind == "COM"]
    # the input's comment carried once, and only this run's record (not the blur's)
    assert comments.count(b"holiday 2026") == 1
    assert records_in(twice) == [f"clconv {clconv.__version__}: -k sharpen"]


def test_a_png_software_text_is_replaced_by_the_record(tmp_path):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "GIMP 2.10")
    info.add_text("Title", "kept")
    PILImage.new("RGB", (9, 7), (1, 2, 3)).save(src, pnginfo=info)
    assert run("apply", "-k", "identity", src, out)[0] == 0
    with PILImage.open(out) as im:
        assert im.info["Software"] == f"clconv {clconv.__version__}: -k identity"
        assert im.info["Title"] == "kept"
    assert read_provenance(src) is None  # another program's Software text is no record


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        PILImage.new("RGB", (8, 6), (i, 50, 90)).save(src / f"f{i}.png")
    return src


def test_skip_existing_says_when_outputs_were_made_otherwise(tree, tmp_path):
    out, report = tmp_path / "out", tmp_path / "report.json"
    assert run("batch", "-q", "-k", "blur", tree, out)[0] == 0
    # same settings: skipped without a word
    code, _, err = run("batch", "-q", "-k", "blur", tree, out, "--skip-existing")
    assert code == 0 and err == ""
    # other settings: one line for all of them, even with -q; each file's in the report
    code, _, err = run("batch", "-q", "-k", "sharpen", tree, out, "--skip-existing", "--report", report)
    assert code == 0
    assert err.splitlines() == [
        f"clconv: warning: {out}: 3 existing outputs were made with other settings ({out}/f0.png: -k blur, ...); "
        "skipped (use --force to make them again)"]
    files = json.loads(report.read_text())["files"]
    assert [f["status"] for f in files] == ["skipped"] * 3
    assert files[1]["warnings"] == [f"{out}/f1.png: exists, made with other settings (-k blur); skipped"]
    # one file (the others are written now): the line names it
    (out / "f0.png").unlink()
    (out / "f2.png").unlink()
    code, _, err = run("batch", "-q", "-k", "sharpen", tree, out, "--skip-existing")
    assert code == 0 and read_provenance(out / "f0.png").endswith(": -k sharpen")
    assert err.splitlines() == [
        f"clconv: warning: {out}/f1.png: exists, made with other settings (-k blur); skipped "
        "(use --force to make it again)"]


def test_skip_existing_cannot_tell_stripped_outputs(tree, tmp_path):
    out = tmp_path / "out"
    assert run("batch", "-q", "-k", "blur", "--strip", tree, out)[0] == 0
    code, _, err = run("batch", "-q", "-k", "sharpen", tree, out, "--skip-existing")
    assert code == 0 and err == ""  # no record to compare with (README: --strip)
