"""Generate clconv's sample images (deterministic: numpy + Pillow, fixed seeds).

    python samples/make_samples.py [OUT_DIR]      # default: the folder of this script

Writes:
  shapes.png     640x480 RGB 8-bit: gradients, shapes, stripes, noise (edges, blur)
  logo-rgba.png  256x256 RGBA: a coloured badge on a fully transparent background
                 (the transparent pixels are black: the alpha-fringe demo)
  gray16.png     320x240 16-bit gray: a smooth ramp with shapes (bit-depth demo)

The images are released under CC0 1.0 (see LICENSE.md).  Everything is drawn
with numpy (no fonts, no anti-aliasing library), so the bytes do not depend on
the Pillow version beyond its PNG encoder.
"""
from __future__ import annotations

import os
import sys

import numpy as np
from PIL import Image


def _grid(h: int, w: int):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return y, x


def _coverage(dist: np.ndarray) -> np.ndarray:
    """Anti-aliased inside-ness from a signed distance (negative inside), in 0..1."""
    return np.clip(0.5 - dist, 0.0, 1.0)


def _convex(xy, vertices) -> np.ndarray:
    """Signed distance (negative inside) to a convex polygon given clockwise on screen."""
    x, y = xy
    dist = np.full(x.shape, -np.inf)
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1]):
        ex, ey = x1 - x0, y1 - y0
        n = np.hypot(ex, ey)
        nx, ny = ey / n, -ex / n  # outward normal for clockwise order (y down)
        dist = np.maximum(dist, (x - x0) * nx + (y - y0) * ny)
    return dist


def _paint(img: np.ndarray, cov: np.ndarray, color) -> None:
    cov = cov[..., None]
    img[...] = img * (1 - cov) + np.asarray(color, np.float64) * cov


def shapes(h: int = 480, w: int = 640) -> np.ndarray:
    rng = np.random.default_rng(20240601)
    y, x = _grid(h, w)
    img = np.empty((h, w, 3), np.float64)
    # background: a diagonal colour gradient
    img[..., 0] = 40 + 150 * x / (w - 1)
    img[..., 1] = 60 + 120 * y / (h - 1)
    img[..., 2] = 200 - 120 * (x + y) / (w + h - 2)

    # a disc with a soft edge and a hard ring around it
    r = np.hypot(x - 150, y - 150)
    _paint(img, _coverage(r - 90), (235, 200, 40))
    ring = np.abs(r - 100) - 4
    _paint(img, (ring < 0).astype(np.float64), (20, 20, 20))
    # a rotated square (hard edges at 30 degrees)
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    u, v = (x - 420) * c + (y - 200) * s, -(x - 420) * s + (y - 200) * c
    _paint(img, _coverage(np.maximum(np.abs(u), np.abs(v)) - 55), (200, 40, 60))
    # an axis-aligned rectangle with a vertical gradient inside
    inside = (x >= 60) & (x < 300) & (y >= 290) & (y < 440)
    grad = np.stack([30 + 200 * (y - 290) / 150, np.full_like(y, 90), 220 - 200 * (y - 290) / 150], axis=-1)
    img[inside] = grad[inside]
    # a triangle
    _paint(img, _coverage(_convex((x, y), [(560, 120), (625, 290), (495, 290)])), (40, 170, 90))

    # "text-like" high-frequency stripes: rows of short bars of varying period
    for row, period in enumerate((2, 3, 4, 6, 8)):
        y0 = 20 + 14 * row
        band = (y >= y0) & (y < y0 + 9) & (x >= 330) & (x < 620)
        on = ((x.astype(int) // period) % 2 == 0) & ((x.astype(int) // (period * 7)) % 3 != 2)
        img[band & on] = (15, 15, 15)
        img[band & ~on] = (245, 245, 245)
    # a fine checkerboard and concentric rings (aliasing / blur demo)
    cb = (x >= 340) & (x < 420) & (y >= 300) & (y < 380)
    check = ((x.astype(int) // 2 + y.astype(int) // 2) % 2) * 230 + 10
    img[cb] = check[cb][:, None]
    zr = np.hypot(x - 560, y - 400)
    zone = zr < 60
    img[zone] = (127.5 + 127.5 * np.cos(zr[zone] ** 2 / 40.0))[:, None]

    # gaussian noise on the lower-right corner, mild elsewhere
    noise = rng.normal(0.0, 2.0, size=img.shape)
    noisy = (x > 330) & (y > 400) & ~zone
    noise[noisy] *= 8.0
    img += noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def logo_rgba(size: int = 256) -> np.ndarray:
    y, x = _grid(size, size)
    cx = cy = (size - 1) / 2
    r = np.hypot(x - cx, y - cy)
    theta = np.arctan2(y - cy, x - cx)
    # a five-pointed star merged with a ring
    star_r = 70 + 30 * np.cos(5 * theta)
    a_star = _coverage(r - star_r)
    a_ring = _coverage(np.abs(r - 108) - 10)
    alpha = np.maximum(a_star, a_ring)
    col = np.zeros((size, size, 3), np.float64)
    col[..., 0] = 255 * (0.5 + 0.5 * np.cos(theta))
    col[..., 1] = 80 + 120 * (y / (size - 1))
    col[..., 2] = 255 * (0.5 + 0.5 * np.sin(theta))
    col[a_ring > a_star] = (30, 144, 255)
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = np.clip(np.rint(col), 0, 255).astype(np.uint8)
    rgba[..., 3] = np.clip(np.rint(255 * alpha), 0, 255).astype(np.uint8)
    rgba[rgba[..., 3] == 0] = 0  # fully transparent pixels are (0, 0, 0, 0)
    return rgba


def gray16(h: int = 240, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(16)
    y, x = _grid(h, w)
    img = 4000 + 57000 * x / (w - 1) * (0.6 + 0.4 * y / (h - 1))
    img = np.where(np.hypot(x - 90, y - 120) < 60, 60000 - 0.8 * img, img)
    img = np.where((x > 190) & (x < 290) & (y > 40) & (y < 200), 12345 + 30 * (y - 40), img)
    img = img + rng.normal(0.0, 40.0, size=img.shape)
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16)


def _save_png(img: Image.Image, path: str) -> None:
    img.save(path, format="PNG", optimize=True)


def main(out_dir: str | None = None) -> None:
    out_dir = out_dir or os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out_dir, exist_ok=True)
    _save_png(Image.fromarray(shapes()), os.path.join(out_dir, "shapes.png"))
    _save_png(Image.fromarray(logo_rgba()), os.path.join(out_dir, "logo-rgba.png"))
    g = gray16()
    _save_png(Image.frombytes("I;16", (g.shape[1], g.shape[0]), g.astype("<u2").tobytes()),
              os.path.join(out_dir, "gray16.png"))
    for name in ("shapes.png", "logo-rgba.png", "gray16.png"):
        p = os.path.join(out_dir, name)
        print(f"{p}: {os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
