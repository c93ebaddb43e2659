"""Draw clconv's kernel gallery: every named kernel applied to one photograph (deterministic).

    python samples/make_gallery.py [--photo PATH] [--out PATH] [--device D]

Defaults: the photo is chelsea.png and the gallery gallery.png, both in the folder of this script.

The photo is halved (the mean of each 2x2 block, rounded half to even: numpy only, so the
thumbnail does not depend on Pillow's resampling) and its centred square kept: a 128x128
thumbnail of the cat's face (192 pixels wide would make the PNG 860 KB).  Each tile is
``clconv.convolve(thumbnail, NAME)``: the pixels ``clconv apply -k NAME`` writes for that
thumbnail, with the kernel's default output mapping (abs for edge detectors, mid-grey bias for
emboss, ``sobel`` unscaled and so clipped at 255).  Tiles are filtered at the thumbnail's own
size, not shrunk afterwards, so a 3x3 kernel shows what it does to pixels.  The grid holds every
name of the kernel registry once (``clconv kernels``), each tile labelled with its name below.
Re-running gives the same pixels (another device or algorithm may round a .5 tie the other way)
and, with the same Pillow, the same bytes (labels and PNG encoding are Pillow's).

chelsea.png is CC0 1.0 (see LICENSE.md); the gallery is clconv's output from it, CC0 1.0 too.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))

#: Reading order of the grid, related kernels side by side.  A registry name missing here is
#: placed after these (in name order), so a new kernel still gets a tile.
TILE_ORDER = (
    "identity", "box", "gaussian", "blur",
    "sharpen", "unsharp", "emboss", "edge",
    "sobel-x", "sobel-y", "sobel", "laplacian",
    "prewitt-x", "prewitt-y", "scharr-x", "scharr-y",
)
COLUMNS = 4
GAP = 4  # white pixels between tiles and around the grid
LABEL_HEIGHT = 16  # fixed, so the grid's size does not depend on the font


def gallery_names() -> list[str]:
    """Every named kernel once, in the grid's reading order."""
    from clconv.kernels import kernel_names

    registry = kernel_names()
    return [n for n in TILE_ORDER if n in registry] + [n for n in registry if n not in TILE_ORDER]


def halve(photo: np.ndarray) -> np.ndarray:
    """The mean of each 2x2 block (an odd last row or column is dropped), uint8."""
    h, w = photo.shape[0] // 2, photo.shape[1] // 2
    blocks = photo[: 2 * h, : 2 * w].astype(np.float64).reshape(h, 2, w, 2, -1)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def thumbnail(photo: np.ndarray) -> np.ndarray:
    """The photo halved, then its centred square."""
    small = halve(photo)
    side = min(small.shape[:2])
    top, left = (small.shape[0] - side) // 2, (small.shape[1] - side) // 2
    return small[top : top + side, left : left + side]


def filter_tiles(thumbnail: np.ndarray, names: list[str], device=None) -> list[np.ndarray]:
    """Each kernel on the thumbnail, as ``clconv apply -k NAME`` would write it."""
    import clconv

    return [clconv.convolve(thumbnail, name, device=device) for name in names]


def tile_corners(count: int, tile_h: int, tile_w: int) -> list[tuple[int, int]]:
    """The (x, y) of each tile's top-left pixel, row by row, COLUMNS to a row."""
    return [
        (GAP + (i % COLUMNS) * (tile_w + GAP), GAP + (i // COLUMNS) * (tile_h + LABEL_HEIGHT + GAP))
        for i in range(count)
    ]


def grid_size(count: int, tile_h: int, tile_w: int) -> tuple[int, int]:
    """(width, height) of the whole gallery."""
    columns = min(count, COLUMNS)
    rows = -(-count // COLUMNS)
    return GAP + columns * (tile_w + GAP), GAP + rows * (tile_h + LABEL_HEIGHT + GAP)


def draw_gallery(tiles: list[np.ndarray], names: list[str]) -> Image.Image:
    """The tiles on a white grid, each name centred below its tile (clipped to the tile's width)."""
    tile_h, tile_w = tiles[0].shape[:2]
    gallery = Image.new("RGB", grid_size(len(tiles), tile_h, tile_w), "white")
    font = ImageFont.load_default()
    for (x, y), tile, name in zip(tile_corners(len(tiles), tile_h, tile_w), tiles, names):
        gallery.paste(Image.fromarray(tile), (x, y))
        label = Image.new("RGB", (tile_w, LABEL_HEIGHT), "white")  # own image: a long name is clipped
        draw = ImageDraw.Draw(label)
        draw.text(((tile_w - draw.textlength(name, font=font)) / 2, 2), name, fill="black", font=font)
        gallery.paste(label, (x, y + tile_h))
    return gallery


def make_gallery(photo_path: str, out_path: str, device=None) -> list[str]:
    """Write the gallery of ``photo_path`` to ``out_path``; returns the names in grid order."""
    with Image.open(photo_path) as image:
        photo = np.asarray(image.convert("RGB"))
    names = gallery_names()
    gallery = draw_gallery(filter_tiles(thumbnail(photo), names, device), names)
    gallery.save(out_path, format="PNG", optimize=True)
    return names


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Every named kernel applied to one photograph, as a grid.")
    parser.add_argument("--photo", default=os.path.join(HERE, "chelsea.png"))
    parser.add_argument("--out", default=os.path.join(HERE, "gallery.png"))
    parser.add_argument("--device", default=None, help="as clconv's --device (default: clconv's choice)")
    args = parser.parse_args(argv)
    names = make_gallery(args.photo, args.out, args.device)
    print(f"{args.out}: {len(names)} kernels, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
