"""The convolution algorithms: one registry, one signature, and the rules of ``auto``.

Every algorithm correlates float32 planes already on the device with one
linear kernel: ``correlate(rt, src, dst, kernel, window, border_code, cval)``;
``refuses(kernel)`` says why it cannot (or None). An algorithm may also
correlate a bank of same-shaped kernels at once (``correlate_bank``).
Everything else (dtype conversion, alpha weighting, magnitude, output mapping,
chains) is the engine's, so an algorithm added here gets all of it, and the
tests, ``--algorithm`` choices and ``bench`` enumerate REGISTRY.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from clconv.algorithms import direct, fft, im2col, separable
from clconv.errors import OptionError


def _never(kernel) -> None:
    return None


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    correlate: Callable
    refuses: Callable = _never
    correlate_bank: Callable | None = None


REGISTRY: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("direct", direct.SUMMARY, direct.correlate),
        Algorithm("separable", separable.SUMMARY, separable.correlate, separable.refuses),
        Algorithm("gemm", im2col.SUMMARY, im2col.correlate, correlate_bank=im2col.correlate_bank),
        Algorithm("fft", fft.SUMMARY, fft.correlate, fft.refuses),
    )
}
CHOICES = ("auto", *REGISTRY)

# The rules of `auto`, measured on the PoCL CPU device (see README "Choosing an algorithm").
SEPARABLE_MIN_TAPS = 15       # rank-1 kernels from 5x3 up: kh + kw taps beat kh * kw
TINY_IMAGE_PIXELS = 64 * 64   # below this, one pass has the least overhead whatever the kernel
GEMM_MIN_BANK_GPU = 16        # a bank this large goes through one GEMM on a GPU; on a CPU never
FFT_MIN_TAPS = 169            # rank above 1 from 13x13 up: fft beats direct (1024² 0.67, 2048² 1.07 at 13x13)


def check_name(name: str) -> str:
    key = (name or "auto").lower()
    if key not in CHOICES:
        raise OptionError("--algorithm", f"unknown algorithm {name!r} (choose from {', '.join(CHOICES)})")
    return key


def choose_auto(kernel, *, image_pixels: int, device_kind: str, bank_size: int = 1) -> tuple[str, str]:
    """The algorithm ``auto`` picks for one linear kernel, and why (a pure function)."""
    kh, kw = kernel.shape
    if bank_size >= GEMM_MIN_BANK_GPU and device_kind == "gpu":
        return "gemm", f"a bank of {bank_size} kernels on a GPU: one unfold and one GEMM"
    if image_pixels < TINY_IMAGE_PIXELS:
        return "direct", f"tiny image ({image_pixels} pixels): one pass has the least overhead"
    if kh * kw >= SEPARABLE_MIN_TAPS and min(kh, kw) > 1 and kernel.separable_factors() is not None:
        return "separable", f"rank 1, {kh}x{kw}: {kh + kw} taps per pixel in two passes instead of {kh * kw}"
    if kh * kw >= FFT_MIN_TAPS and kernel.separable_factors() is None:
        return "fft", f"{kh}x{kw}, rank above 1: spectra multiply in O(log n) per pixel instead of {kh * kw} taps"
    if kernel.separable_factors() is not None and min(kh, kw) > 1:
        return "direct", f"rank 1 but only {kh}x{kw}: one pass over {kh * kw} taps beats two passes"
    return "direct", f"{kh}x{kw}, rank above 1: sliding window over every tap"


def resolve(name: str, kernel, *, image_pixels: int, device_kind: str, bank_size: int = 1) -> tuple[Algorithm, str]:
    """The Algorithm for ``name`` ('auto' or a registry name) and ``kernel``, with the reason."""
    key = check_name(name)
    if key == "auto":
        key, reason = choose_auto(kernel, image_pixels=image_pixels, device_kind=device_kind, bank_size=bank_size)
        return REGISTRY[key], f"auto: {reason}"
    why_not = REGISTRY[key].refuses(kernel)
    if why_not:
        raise OptionError("--algorithm", f"{key} cannot run this kernel: {why_not}")
    return REGISTRY[key], "chosen with --algorithm"
