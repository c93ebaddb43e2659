"""The one timing harness of ``clconv bench`` and ``benchmarks/``: calls interleaved round by round
in an order that rotates, medians over rounds, and ratios as medians of per-round ratios.

The machine is shared and noisy (PERF-NOTES): a slow minute slows every candidate of a round
alike, so a ratio taken within a round means more than a ratio of two medians.

- ``interleaved``/``time_calls``: seconds per round of plain callables (the benchmark scripts,
  the whole-process comparisons).
- ``measure``: ``Candidate`` s of one workload: each called once first (timed apart: it builds
  programs the first time a kernel source is needed) and its output checked; then ``repeat``
  rounds, the last round's outputs checked again. A candidate whose output is off is flagged
  (``error`` says why); one that raises has no timings. ``make_rows`` turns that into JSON rows.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from clconv.runtime.device import Runtime

Seconds = TypeVar("Seconds", bound="float | None")  # what a timed run returns: its seconds, or None

# --------------------------------------------------------------------------- rounds of plain calls


def seconds_of(call: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def rotated(items: list, r: int) -> list:
    """``items`` in round ``r``'s order: the first place moves on by one each round."""
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


def interleaved(runs: dict[str, Callable[[], Seconds]], rounds: int, warm: bool = True) -> dict[str, list[Seconds]]:
    """Each run once untimed (``warm``), then ``rounds`` rounds of every run, the order rotating
    from round to round. A run returns its seconds (or None: it did not run). Returns the seconds
    per round, by name."""
    names = list(runs)
    if warm:
        for name in names:
            runs[name]()
    times: dict[str, list[Seconds]] = {name: [] for name in names}
    for r in range(rounds):
        for name in rotated(names, r):
            times[name].append(runs[name]())
    return times


def time_calls(calls: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds per round of each call: ``warmup`` untimed passes over every call, then
    ``rounds`` interleaved rounds."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    return interleaved({name: functools.partial(seconds_of, call) for name, call in calls.items()}, rounds, warm=False)


def median_ratio(numer: Sequence[float | None], denom: Sequence[float | None]) -> float | None:
    """Median over rounds of numer / denom in the same round, rounds missing either left out.
    A reference's seconds over clconv's: > 1 means clconv is faster."""
    ratios = [a / b for a, b in zip(numer, denom) if a is not None and b]
    return statistics.median(ratios) if ratios else None


# --------------------------------------------------------------------------- candidates of a workload


@dataclass
class Candidate:
    """One thing to time: a clconv call on a device (``rt`` set) or a reference (``rt`` None)."""

    key: str
    name: str
    device: str
    call: Callable[[], object]
    check: Callable[[object], float]
    rt: Runtime | None = None
    out_reused: bool = False

    @property
    def reference(self) -> bool:
        """True for a reference library's call (no device runtime)."""
        return self.rt is None


@dataclass
class Measured:
    """What ``measure`` found for one candidate: first call, largest error, failure, seconds per round."""

    first_s: float | None = None
    max_error: float | None = None
    error: str | None = None
    timed: bool = False
    wall: list[float | None] = field(default_factory=list)  # seconds per round (None where it did not run)
    device: list[float | None] = field(default_factory=list)  # kernel seconds per round (clconv only)


def _timed_call(c: Candidate) -> tuple[float, float | None, object]:
    """(wall seconds, device seconds or None, output) of one call; clconv calls wait for the queue."""
    if c.rt is None:
        start = time.perf_counter()
        out = c.call()
        return time.perf_counter() - start, None, out
    with c.rt.recording() as events:
        start = time.perf_counter()
        out = c.call()
        c.rt.queue.finish()
        seconds = time.perf_counter() - start
    return seconds, c.rt.device_seconds(events), out


def describe_failure(exc: BaseException) -> str:
    """The exception's type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _record_check(m: Measured, c: Candidate, out, tol: float) -> None:
    err = float(c.check(out))
    m.max_error = err if m.max_error is None else max(m.max_error, err)
    if not err <= tol and m.error is None:
        m.error = f"wrong output: max error {err:.3g} above the tolerance {tol:.3g}"


def _first_call(c: Candidate, m: Measured, tol: float) -> bool:
    """The first call, timed apart and checked; False when it raised (no rounds for it then)."""
    try:
        m.first_s, _, out = _timed_call(c)
        _record_check(m, c, out, tol)
    except Exception as exc:  # noqa: BLE001 - a failing candidate becomes a flagged row
        m.error = describe_failure(exc)
        return False
    m.timed = True
    return True


def _round_run(c: Candidate, m: Measured, repeat: int, tol: float) -> Callable[[], float | None]:
    """One timed call per round, returning its wall seconds (None once the candidate has failed);
    the device seconds, and the output check of the last round, go into ``m``."""
    rounds = itertools.count()

    def run():
        last = next(rounds) == repeat - 1
        if not m.timed:
            m.device.append(None)
            return None
        try:
            seconds, device_s, out = _timed_call(c)
            m.device.append(device_s)
            if last:
                _record_check(m, c, out, tol)
            return seconds
        except Exception as exc:  # noqa: BLE001
            m.error, m.timed = describe_failure(exc), False
            m.device.append(None)
            return None

    return run


def measure(candidates: list[Candidate], repeat: int, tol: float) -> dict[str, Measured]:
    """First call (timed apart, output checked), then ``repeat`` interleaved rounds."""
    results = {c.key: Measured() for c in candidates}
    live = [c for c in candidates if _first_call(c, results[c.key], tol)]
    times = interleaved({c.key: _round_run(c, results[c.key], repeat, tol) for c in live}, repeat, warm=False)
    for key, wall in times.items():
        results[key].wall = wall
    return results


# --------------------------------------------------------------------------- rows


def _ms(seconds):
    return None if seconds is None else seconds * 1e3


def _per_s(amount, seconds, unit=1e9):
    return amount / seconds / unit if amount is not None and seconds else None


def _pct(value, peak):
    return None if value is None or not peak else 100.0 * value / peak


def _row(c: Candidate, m: Measured, work: dict, peak) -> dict:
    wall = [s for s in m.wall if s is not None]
    dev = [s for s in m.device if s is not None]
    med = statistics.median(wall) if wall else None
    dmed = statistics.median(dev) if dev else None
    gb_s, device_gb_s = _per_s(work["bytes"], med), _per_s(work["bytes"], dmed)
    return {
        "algorithm": c.name,
        "device": c.device,
        "reference": c.reference,
        "size": work["size"],
        "kernel": work["kernel"],
        "dtype": work["dtype"],
        "channels": work["channels"],
        "border": work["border"],
        "kernel_shape": work.get("kernel_shape"),
        "median_ms": _ms(med),
        "min_ms": _ms(min(wall) if wall else None),
        "mpix_s": _per_s(work.get("pixels"), med, 1e6),
        "gflop_s": _per_s(work["flops"], med),
        "gb_s": gb_s,
        "bw_pct": _pct(gb_s, peak),
        "device_median_ms": _ms(dmed),
        "device_min_ms": _ms(min(dev) if dev else None),
        "device_mpix_s": _per_s(work.get("pixels"), dmed, 1e6),
        "device_gflop_s": _per_s(work["flops"], dmed),
        "device_gb_s": device_gb_s,
        "device_bw_pct": _pct(device_gb_s, peak),
        "first_call_ms": _ms(m.first_s),
        "max_error": m.max_error,
        "tolerance": work["tolerance"],
        "ok": m.error is None,
        "error": m.error,
        "rounds": len(wall),
        "out_reused": c.out_reused,
        "speedup": {},
        "device_speedup": {},
    }


def make_rows(candidates: list[Candidate], results: dict[str, Measured], work: dict, bandwidth: dict) -> list[dict]:
    """One JSON row per candidate. ``work``: size, kernel, dtype, channels, border, pixels, flops,
    bytes, kernel_shape. ``bandwidth``: GB/s by device description, and 'host'."""
    refs = [c for c in candidates if c.reference and results[c.key].timed]
    rows = []
    for c in candidates:
        m = results[c.key]
        row = _row(c, m, work, bandwidth.get("host" if c.reference else c.device))
        if not c.reference and m.timed:
            for ref in refs:
                row["speedup"][ref.name] = median_ratio(results[ref.key].wall, m.wall)
                row["device_speedup"][ref.name] = median_ratio(results[ref.key].wall, m.device)
        rows.append(row)
    return rows
