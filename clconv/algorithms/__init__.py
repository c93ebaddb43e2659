"""The convolution algorithms: one registry, one signature.

Every algorithm correlates float32 planes already on the device:
``correlate(rt, src, dst, weights, window, border_code, cval)``. Everything
else (dtype conversion, alpha weighting, magnitude, output mapping, chains) is
the engine's, so an algorithm added here gets all of it, and the tests and
``--algorithm`` choices enumerate REGISTRY.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from clconv.algorithms import direct
from clconv.errors import OptionError


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    correlate: Callable


REGISTRY: dict[str, Algorithm] = {
    a.name: a for a in (Algorithm("direct", direct.SUMMARY, direct.correlate),)
}
CHOICES = ("auto", *REGISTRY)


def choose(name: str, weights_shape: tuple[int, int], device_kind: str) -> Algorithm:
    """The algorithm for ``name``; ``auto`` is the only one there is today: direct."""
    key = (name or "auto").lower()
    if key == "auto":
        return REGISTRY["direct"]
    if key not in REGISTRY:
        raise OptionError("--algorithm", f"unknown algorithm {name!r} (choose from {', '.join(CHOICES)})")
    return REGISTRY[key]
