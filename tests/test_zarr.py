"""Zarr arrays through apply (clconv.zarrio.apply_zarr): filtered block by block into a zarr array
of the input's format and chunks, equal to clconv.convolve on the whole array and to the oracle;
written atomically (nothing left on failure, an existing output replaced only once the new one is
complete); the input never overwritten; unreadable inputs and bad outputs are one-line errors."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")

import clconv  # noqa: E402
from clconv.errors import ImageError, OptionError, OutputError  # noqa: E402
from clconv.files import FilterOptions  # noqa: E402
from clconv import zarrio  # noqa: E402
from clconv.zarrio import apply_zarr, is_zarr  # noqa: E402

from oracle import assert_matches, reference  # noqa: E402

ZARR3 = int(zarr.__version__.split(".")[0]) >= 3


def make_zarr(path, pixels: np.ndarray, chunks, zarr_format=None, attrs=None):
    extra = {"zarr_format": zarr_format} if zarr_format and ZARR3 else {}
    array = zarr.open_array(str(path), mode="w", shape=pixels.shape, chunks=chunks, dtype=pixels.dtype, **extra)
    array[...] = pixels
    array.attrs.update(attrs or {})
    return array


def natural(shape, dtype, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    return (rng.random(shape) * 4 - 1).astype(np.float32)


def leftovers(folder) -> list:
    return sorted(name for name in os.listdir(folder) if name.startswith(".clconv-"))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_filtered_block_by_block_equals_the_whole_image_and_the_oracle(runtime, tmp_path, zarr_format):
    if zarr_format == 3 and not ZARR3:
        pytest.skip("zarr 2 writes format 2 only")
    pixels = natural((45, 61, 3), np.uint8, 1)
    make_zarr(tmp_path / "in.zarr", pixels, (16, 20, 3), zarr_format, {"units": "counts"})  # ragged last chunks
    options = FilterOptions(kernels=("sharpen", "gaussian:sigma=1.5"), border="wrap")
    facts = apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", options)
    assert facts == {"pixels": 45 * 61, "outputs": [str(tmp_path / "out.zarr")]}
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert out.shape == pixels.shape and out.dtype == np.uint8 and tuple(out.chunks) == (16, 20, 3)
    assert getattr(out.metadata, "zarr_format", 2) == zarr_format
    assert out.attrs["units"] == "counts"
    assert out.attrs["clconv"].endswith("-k sharpen -k gaussian:sigma=1.5 --border wrap")
    result = out[...]
    np.testing.assert_array_equal(result, clconv.convolve(pixels, ["sharpen", "gaussian:sigma=1.5"], border="wrap"))
    assert_matches(result, reference(pixels, ["sharpen", "gaussian:sigma=1.5"], "wrap"), "zarr")
    assert leftovers(tmp_path) == []


def test_geometry_dtype_and_a_2d_float_array_in_bands(runtime, tmp_path, monkeypatch):
    monkeypatch.setattr(zarrio, "BAND_BYTES", 1)  # each chunk column a band of its own (memory: _store_in_bands)
    pixels = natural((50, 37), np.float32, 2)
    make_zarr(tmp_path / "in.zarr", pixels, (7, 9))
    options = FilterOptions(kernels=("sobel-x",), padding=2, stride=3, dilation=2, border="mirror", dtype="uint16",
                            scale=1000.0)
    apply_zarr(str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr"), options)
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    expected = clconv.convolve(pixels, "sobel-x", border="mirror", padding=2, stride=3, dilation=2, dtype=np.uint16,
                               scale=1000.0)
    assert out.shape == expected.shape == (17, 13) and tuple(out.chunks) == (7, 9)
    np.testing.assert_array_equal(out[...], expected)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_two_and_four_channels_keep_alpha_as_npy_inputs_do(runtime, tmp_path, channels):
    pixels = natural((30, 26, channels), np.uint16, channels)
    make_zarr(tmp_path / "in.zarr", pixels, (8, 8, channels))
    apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("sharpen",)))
    alpha = "keep" if channels in (2, 4) else None
    expected = clconv.convolve(pixels, "sharpen", alpha=alpha)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...], expected)


def test_outputs_are_never_the_input_and_need_force(runtime, tmp_path):
    pixels = natural((12, 12), np.uint8)
    make_zarr(tmp_path / "in.zarr", pixels, (5, 5))
    options = FilterOptions(kernels=("box",))
    for target in (tmp_path / "in.zarr", tmp_path / "in.zarr" / "inner.zarr"):
        with pytest.raises(OutputError, match="input"):
            apply_zarr(tmp_path / "in.zarr", target, options, force=True)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "in.zarr"), mode="r")[...], pixels)
    apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", options)
    with pytest.raises(OutputError, match="exists"):
        apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("sharpen",)))
    apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("sharpen",)), force=True)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...],
                                  clconv.convolve(pixels, "sharpen"))
    (tmp_path / "folder.zarr").mkdir()
    (tmp_path / "folder.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a zarr array"):
        apply_zarr(tmp_path / "in.zarr", tmp_path / "folder.zarr", options, force=True)
    assert (tmp_path / "folder.zarr" / "notes.txt").read_text() == "mine"
    with pytest.raises(OutputError, match="zarr output"):
        apply_zarr(tmp_path / "in.zarr", tmp_path / "out.png", options)
    with pytest.raises(OutputError, match="does not exist"):
        apply_zarr(tmp_path / "in.zarr", tmp_path / "missing" / "out.zarr", options)
    assert leftovers(tmp_path) == []


def test_a_damaged_chunk_fails_leaving_nothing_and_the_old_output_intact(runtime, tmp_path):
    pixels = natural((40, 40), np.float32, 3)
    make_zarr(tmp_path / "in.zarr", pixels, (10, 10))
    apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("box",)))
    before = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    chunk = next(os.path.join(root, name) for root, _, names in os.walk(tmp_path / "in.zarr") for name in names
                 if not name.startswith((".z", "zarr.json")))
    with open(chunk, "wb") as f:
        f.write(b"not a compressed chunk")
    with pytest.raises(ImageError, match="cannot read a chunk") as failure:
        apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("sharpen",)), force=True)
    assert failure.value.subject == str(tmp_path / "in.zarr")
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...], before)
    assert leftovers(tmp_path) == []


def test_inputs_that_are_not_filterable_arrays(runtime, tmp_path):
    options = FilterOptions(kernels=("box",))
    with pytest.raises(ImageError, match="no such"):
        apply_zarr(tmp_path / "missing.zarr", tmp_path / "out.zarr", options)
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ImageError, match="not a zarr array"):
        apply_zarr(tmp_path / "empty.zarr", tmp_path / "out.zarr", options)
    make_zarr(tmp_path / "ints.zarr", np.zeros((4, 4), np.int32), (2, 2))
    with pytest.raises(ImageError, match="dtype"):
        apply_zarr(tmp_path / "ints.zarr", tmp_path / "out.zarr", options)
    make_zarr(tmp_path / "cube.zarr", np.zeros((2, 4, 4, 3), np.uint8), (1, 2, 2, 3))
    with pytest.raises(ImageError, match="shape"):
        apply_zarr(tmp_path / "cube.zarr", tmp_path / "out.zarr", options)
    make_zarr(tmp_path / "big.zarr", np.zeros((30, 40), np.uint8), (8, 8))
    with pytest.raises(ImageError, match="max-pixels"):
        apply_zarr(tmp_path / "big.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("box",), max_pixels=1000))
    with pytest.raises(OptionError, match="gray"):
        apply_zarr(tmp_path / "big.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("box",), gray=True))
    assert not os.path.exists(tmp_path / "out.zarr") and leftovers(tmp_path) == []


def test_zarr_paths_are_known_by_their_extension():
    assert is_zarr("a/b.zarr") and is_zarr("B.ZARR/") and not is_zarr("b.zarr.png") and not is_zarr("zarr")


def test_explain_says_the_whole_arrays_schedule_and_the_blocks(runtime, tmp_path):
    make_zarr(tmp_path / "in.zarr", natural((70, 90, 3), np.uint8), (32, 40, 3))
    lines = []
    apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("box:size=5", "sobel")),
               explain=lines.append)
    assert lines[0].startswith("schedule for 90x70 on ") and "blocks of 40x32 (the zarr chunks)" in lines[0]
    assert [line.split(":")[0] for line in lines[1:]] == ["box", "sobel-x", "sobel-y"]


def test_strip_leaves_out_attributes_and_quality_is_said_to_be_ignored(runtime, tmp_path, capsys):
    from clconv.imageio import SaveOptions

    make_zarr(tmp_path / "in.zarr", natural((9, 9), np.uint8), (4, 4), attrs={"units": "counts"})
    apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("box",)),
               save_options=SaveOptions(strip=True, quality=90))
    assert dict(zarr.open_array(str(tmp_path / "out.zarr"), mode="r").attrs) == {}
    assert capsys.readouterr().err == f"clconv: warning: {tmp_path / 'out.zarr'}: --quality does not apply to zarr " \
                                      "outputs (ignored)\n"


def test_without_the_extra_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zarr", None)  # as if zarr were not installed: import fails
    with pytest.raises(ImageError, match=r"pip install 'clconv\[dask\]'"):
        apply_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", FilterOptions(kernels=("box",)))


def test_clconv_apply_takes_zarr_folders(runtime, tmp_path, run_cli):
    """Through the command line (the hook in files.apply_file): the same array as apply_zarr
    gives, within the oracle; an existing output and a folder that is not zarr exit 2."""
    import zarr

    pixels = natural((70, 53), np.float32)
    src = tmp_path / "in.zarr"
    make_zarr(src, pixels, (32, 20))
    r = run_cli("apply", "-k", "gaussian:sigma=1.5", "--border", "wrap", src, tmp_path / "out.zarr")
    assert r.returncode == 0, r.stderr
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert out.chunks == (32, 20)
    assert_matches(np.asarray(out[:]), reference(pixels, "gaussian:sigma=1.5", "wrap"), "apply .zarr")
    r = run_cli("apply", "-k", "blur", src, tmp_path / "out.zarr")
    assert (r.returncode, r.stderr) == (2, f"clconv: error: {tmp_path / 'out.zarr'}: exists (use --force to overwrite)\n")
    (tmp_path / "plain").mkdir()
    r = run_cli("apply", "-k", "blur", tmp_path / "plain", tmp_path / "x.png")
    assert r.returncode == 2 and r.stderr.startswith(f"clconv: error: {tmp_path / 'plain'}: ")
