"""A device's tuned measurements (written by `clconv tune`, clconv.tuning): read, checked, and
asked by ``auto`` for its choice.

One JSON file per device, keyed by platform, device, driver and clconv version, under
``$XDG_CACHE_HOME/clconv/tuning`` (default ``~/.cache``). A file that is corrupt, of another
schema or of another device is ignored with one warning line.

``Table.choose`` estimates each candidate's time for a kernel and image from the nearest
measured image size and the two measured kernel sides around it (log-log interpolation;
separable scaled by its number of terms) and picks the fastest. At a measured point the
estimate is the measurement itself, so ``auto`` then takes the measured best.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
import re

SCHEMA = 1
SEPARABLE_RANKS = (1, 2)  # the ranks `clconv tune` measures separable with
_generation = 0  # forget() counts up: every runtime then reads its file again


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/clconv/tuning``, beside the device cache."""
    from clconv.runtime import user_cache_dir

    return os.path.join(user_cache_dir(), "tuning")


def device_key(rt) -> dict:
    """What the measurements belong to: another driver or clconv version measures again."""
    import clconv

    driver = getattr(getattr(rt, "device", None), "driver_version", "") or ""
    return {
        "platform": rt.info.platform,
        "device": rt.info.name,
        "driver": str(driver).strip(),
        "clconv": clconv.__version__,
    }


def cache_path(rt) -> str:
    """The file that holds ``rt``'s tuned measurements: named by the device and a hash of its key."""
    key = device_key(rt)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", key["device"]).strip("-")[:40] or "device"
    return os.path.join(cache_dir(), f"{slug}-{digest}.json")


class Table:
    """The measurements of one device: ms per (image size, kernel side, algorithm, params, rank)."""

    def __init__(self, path: str, doc: dict):
        self.path = path
        self.doc = doc
        self.rows = doc["measurements"]
        self.sizes = sorted({tuple(r["size"]) for r in self.rows}, key=lambda s: s[0] * s[1])
        self.sides = sorted({int(r["side"]) for r in self.rows})
        self._chosen: dict = {}
        # {size: {(algorithm, params json, measured rank): {side: ms}}}, built once: auto asks per filter
        self._by_size: dict = {}
        for r in self.rows:
            key = (r["algorithm"], json.dumps(r["params"], sort_keys=True), r["rank"])
            self._by_size.setdefault(tuple(r["size"]), {}).setdefault(key, {})[int(r["side"])] = float(r["ms"])

    def _candidates(self, size, rank_needed: int | None) -> dict:
        """{(algorithm, params json, measured rank): {side: ms}} at one image size; those measured
        by separable terms only for a kernel that has them (rank <= 4)."""
        return {
            key: by_side
            for key, by_side in self._by_size.get(size, {}).items()
            if key[2] is None or rank_needed is not None
        }

    def estimates(self, kernel, image_pixels: int) -> dict | None:
        """{(algorithm, params json): estimated ms} for ``kernel`` on an image of ``image_pixels``,
        or None when the measurements do not cover it (1-D kernels, sides beyond the grid)."""
        kh, kw = kernel.shape
        if min(kh, kw) < 2 or not self.sizes:
            return None
        rank = kernel.rank
        size = min(self.sizes, key=lambda s: abs(math.log(s[0] * s[1]) - math.log(image_pixels)))
        pixel_scale = image_pixels / (size[0] * size[1])
        best: dict = {}
        for (name, params, measured_rank), by_side in self._candidates(size, rank).items():
            if measured_rank is not None:
                # by separable terms: the nearest measured rank; more terms cost proportionally more
                if measured_rank != min(SEPARABLE_RANKS, key=lambda m: (abs(m - rank), m)):
                    continue
                side, factor = (kh + kw) / 2, rank / measured_rank
            else:
                side, factor = math.sqrt(kh * kw), 1.0
            ms = _interpolate(by_side, side)
            if ms is None:
                return None
            best[(name, params)] = ms * factor * pixel_scale
        return best or None

    def choose(self, kernel, image_pixels: int):
        """(algorithm, params, reason) of the fastest estimate, or None (the model decides).
        A function of the kernel's shape and rank and the image size only, so it is remembered."""
        key = (kernel.shape, kernel.rank, image_pixels)
        if key not in self._chosen:
            self._chosen[key] = self._choose(kernel, image_pixels)
        found = self._chosen[key]
        return None if found is None else (found[0], dict(found[1]), found[2])

    def _choose(self, kernel, image_pixels: int):
        found = self.estimates(kernel, image_pixels)
        if not found:
            return None
        (name, params), ms = min(found.items(), key=lambda item: item[1])
        per_algorithm: dict = {}
        for (other, _), t in found.items():
            per_algorithm[other] = min(t, per_algorithm.get(other, math.inf))
        others = ", ".join(f"{n} {t:.1f}" for n, t in sorted(per_algorithm.items(), key=lambda x: x[1]) if n != name)
        reason = f"tuned: {ms:.1f} ms estimated from this device's measurements (vs {others or '-'})"
        return name, json.loads(params), reason


def _interpolate(by_side: dict, side: float) -> float | None:
    """ms at ``side`` by log-log interpolation between the measured sides around it; None
    outside the measured sides."""
    sides = sorted(by_side)
    if not sides or not sides[0] - 1e-9 <= side <= sides[-1] + 1e-9:
        return None
    hi = min(bisect.bisect_left(sides, side - 1e-9), len(sides) - 1)
    if hi == 0 or abs(sides[hi] - side) < 1e-9:
        return by_side[sides[hi]]
    lo, hi = sides[hi - 1], sides[hi]
    t = (math.log(side) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return math.exp((1 - t) * math.log(by_side[lo]) + t * math.log(by_side[hi]))


def _valid(doc, key: dict) -> str | None:
    """Why ``doc`` cannot be used for the device ``key``, or None."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return "not a clconv tuning file of this version"
    if doc.get("device") != key:
        return "measured on another device, driver or clconv version"
    rows = doc.get("measurements")
    if not isinstance(rows, list) or not rows:
        return "no measurements"
    for r in rows:
        ok = (
            isinstance(r, dict)
            and r.get("algorithm") in _algorithm_names()
            and isinstance(r.get("params"), dict)
            and isinstance(r.get("size"), list)
            and len(r["size"]) == 2
            and all(isinstance(v, int) and v > 0 for v in r["size"])
            and isinstance(r.get("side"), int)
            and r["side"] > 0
            and isinstance(r.get("ms"), (int, float))
            and math.isfinite(r["ms"])
            and r["ms"] > 0
            and (r.get("rank") is None or r.get("rank") in SEPARABLE_RANKS)
        )
        if not ok:
            return "a measurement is malformed"
    return None


def _algorithm_names():
    from clconv.algorithms import REGISTRY

    return tuple(REGISTRY)


def load(path: str, key: dict):
    """The Table in ``path`` for the device ``key``; None (with one warning) when it is unusable,
    None (silently) when there is no file."""
    from clconv.errors import warn

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        warn(f"{path}: tuning cache ignored: cannot read it ({type(exc).__name__}); run clconv tune again")
        return None
    why = _valid(doc, key)
    if why:
        warn(f"{path}: tuning cache ignored: {why}; run clconv tune again")
        return None
    return Table(path, doc)


def table_for(rt):
    """The device's tuned Table (read once per runtime and kept on it: auto asks on every call),
    or None. CLCONV_TUNING=0 ignores it."""
    if os.environ.get("CLCONV_TUNING", "1").strip() == "0":
        return None
    held = rt.cache("tuning", dict)  # {"generation": when it was read, "table": Table or None}
    if held.get("generation") != _generation:
        held["table"] = load(cache_path(rt), device_key(rt))
        held["generation"] = _generation
    return held["table"]


def forget() -> None:
    """Drop the tables read by this process (after a tune, or in tests)."""
    global _generation
    _generation += 1
