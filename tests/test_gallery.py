"""samples/make_gallery.py: every named kernel has one tile, and each tile is what clconv writes.

The tiles are compared as pixels (never file bytes: the labels' font and the PNG encoder belong to
Pillow) with ``clconv.convolve``, with ``clconv apply`` and with the float64 oracle. The shipped
samples/gallery.png is held to the same, so a new kernel, or a kernel whose weights change, fails
here until the gallery is drawn again.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oracle import assert_matches, reference

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SCRIPT = SAMPLES / "make_gallery.py"
REGENERATE = "draw it again: python samples/make_gallery.py"


@pytest.fixture(scope="module")
def gallery():
    """The script as a module (samples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_gallery", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chosen_device():
    """The device the suite runs on (conftest's runtime fixture reads the same variable)."""
    return os.environ.get("CLCONV_TEST_DEVICE") or None


def pixels_of(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def thumbnail_of(photo: np.ndarray) -> np.ndarray:
    """The script's thumbnail, written again here: 2x2 means rounded half to even, centred square."""
    h, w = photo.shape[0] // 2 * 2, photo.shape[1] // 2 * 2
    p = photo[:h, :w].astype(np.float64)
    small = np.rint((p[0::2, 0::2] + p[0::2, 1::2] + p[1::2, 0::2] + p[1::2, 1::2]) / 4).astype(np.uint8)
    side = min(small.shape[:2])
    top, left = (small.shape[0] - side) // 2, (small.shape[1] - side) // 2
    return small[top : top + side, left : left + side]


def tiles_in(grid: np.ndarray, gallery, names: list[str], side: int) -> dict[str, np.ndarray]:
    """Each name's tile cut out of a drawn gallery; the gallery must have room for exactly these."""
    assert (grid.shape[1], grid.shape[0]) == gallery.grid_size(len(names), side, side), REGENERATE
    corners = gallery.tile_corners(len(names), side, side)
    return {name: grid[y : y + side, x : x + side] for name, (x, y) in zip(names, corners)}


def test_every_named_kernel_has_one_tile(gallery):
    from clconv.kernels import kernel_names

    names = gallery.gallery_names()
    assert len(names) == len(set(names))
    assert sorted(names) == kernel_names()
    assert len(gallery.TILE_ORDER) == len(set(gallery.TILE_ORDER))
    assert set(gallery.TILE_ORDER) <= set(kernel_names()), "TILE_ORDER names a kernel clconv does not have"


def test_tiles_do_not_overlap(gallery):
    side = 5
    covered = np.zeros(gallery.grid_size(17, side, side)[::-1], int)
    for x, y in gallery.tile_corners(17, side, side):
        covered[y : y + side + gallery.LABEL_HEIGHT, x : x + side] += 1  # tile and its label
    assert covered.max() == 1
    assert covered.sum() == 17 * side * (side + gallery.LABEL_HEIGHT)


@pytest.fixture(scope="module")
def tiny_gallery(gallery, tmp_path_factory):
    """The script run end to end, as a user runs it, on a 49x67 crop of the photo (odd sides)."""
    folder = tmp_path_factory.mktemp("gallery")
    photo = pixels_of(SAMPLES / "chelsea.png")[90:139, 150:217]
    Image.fromarray(photo).save(folder / "tiny.png")
    env = dict(os.environ)
    if chosen_device():
        env["CLCONV_DEVICE"] = chosen_device()
    result = subprocess.run([sys.executable, str(SCRIPT), "--photo", str(folder / "tiny.png"),
                             "--out", str(folder / "gallery.png")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    names = gallery.gallery_names()
    assert f"{len(names)} kernels" in result.stdout
    thumb = thumbnail_of(photo)
    assert thumb.shape == (24, 24, 3)
    return folder, thumb, tiles_in(pixels_of(folder / "gallery.png"), gallery, names, 24)


def test_tiny_gallery_tiles_equal_convolve_and_the_oracle(tiny_gallery):
    import clconv

    _, thumb, tiles = tiny_gallery
    assert np.array_equal(tiles["identity"], thumb)
    for name, tile in tiles.items():
        assert np.array_equal(tile, clconv.convolve(thumb, name, device=chosen_device())), name
        assert_matches(tile, reference(thumb, name), name)


def test_tiny_gallery_tiles_equal_clconv_apply(tiny_gallery, run_cli):
    folder, thumb, tiles = tiny_gallery
    Image.fromarray(thumb).save(folder / "thumb.png")
    device = ["--device", chosen_device()] if chosen_device() else []
    for name, tile in tiles.items():
        out = folder / f"apply-{name}.png"
        result = run_cli("apply", "-k", name, *device, "--force", folder / "thumb.png", out)
        assert result.returncode == 0, result.stderr
        assert np.array_equal(tile, pixels_of(out)), name


def test_shipped_gallery_is_current(gallery):
    """samples/gallery.png: one tile per named kernel, each what clconv gives now (within 1: another
    device or algorithm may round a value next to a .5 tie the other way)."""
    import clconv

    assert (SAMPLES / "gallery.png").stat().st_size < 1_000_000
    assert (SAMPLES / "chelsea.png").stat().st_size < 200_000
    thumb = thumbnail_of(pixels_of(SAMPLES / "chelsea.png"))
    assert thumb.shape == (128, 128, 3)
    names = gallery.gallery_names()
    tiles = tiles_in(pixels_of(SAMPLES / "gallery.png"), gallery, names, 128)
    for name, tile in tiles.items():
        now = clconv.convolve(thumb, name, device=chosen_device())
        assert np.abs(tile.astype(int) - now).max() <= 1, f"{name}: the tile is out of date; {REGENERATE}"


def test_every_sample_is_in_the_licence_file():
    licence = (SAMPLES / "LICENSE.md").read_text()
    for path in SAMPLES.iterdir():
        if path.suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            assert f"`{path.name}`" in licence, f"{path.name} has no source or licence in samples/LICENSE.md"
