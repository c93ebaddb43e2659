"""What a bench run prints and saves: the header, the table of rows, the targets table, the JSON."""

from __future__ import annotations

import json
import math

import numpy as np

from clconv.atomic import write_atomically
from clconv.bench.targets import SPEEDUP


def _short(name: str) -> str:
    return (
        name.replace("scipy.ndimage.correlate", "scipy")
        .replace("cv2.sepFilter2D", "cv2sep")
        .replace("cv2.filter2D", "cv2")
        .replace("numpy.matmul", "numpy")
    )


def _num(value, spec: str) -> str:
    """``value`` formatted with ``spec`` (such as '8.2f'), or '-' padded to the same width."""
    if value is None:
        width = spec.split(".")[0]
        return "-".rjust(int(width)) if width.isdigit() else "-"
    return format(value, spec)


def format_table(rows: list[dict]) -> list[str]:
    """The terminal table: one line per row; e2e and device-only figures; speed-ups per reference."""
    head = (
        f"{'algorithm':<24} {'dev':<4} {'size':>9} {'ch':>2} {'kernel':<18} {'dtype':<7} {'median':>8} "
        f"{'min':>8} {'kernels':>8} {'Mpix/s':>8} {'GFLOP/s':>8} {'GB/s':>6} {'%bw':>4} {'1st ms':>7} "
        f"{'max err':>8} {'check':<5} speed-up (e2e; kernels-only)"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        dev = "host" if r["reference"] else r["device"].split()[0]
        kernel = r["kernel"] if len(r["kernel"]) <= 18 else r["kernel"][:15] + "..."
        speed = ", ".join(
            f"{_short(k)} x{_num(v, '.2f')}; x{_num(r['device_speedup'].get(k), '.2f')}"
            for k, v in r["speedup"].items()
        )
        lines.append(
            f"{_short(r['algorithm']):<24} {dev:<4} {r['size']:>9} {r['channels']:>2} {kernel:<18} {r['dtype']:<7} "
            f"{_num(r['median_ms'], '8.2f')} {_num(r['min_ms'], '8.2f')} {_num(r['device_median_ms'], '8.2f')} "
            f"{_num(r['mpix_s'], '8.1f')} {_num(r['gflop_s'], '8.2f')} {_num(r['gb_s'], '6.2f')} "
            f"{_num(r['bw_pct'], '4.0f')} {_num(r['first_call_ms'], '7.0f')} "
            f"{_num(r['max_error'], '8.1e')} {'ok' if r['ok'] else 'FAIL':<5} {speed}"
        )
        if not r["ok"]:
            lines.append(f"    {r['algorithm']} on {dev}: {r['error']}")
    return lines


def format_header(doc: dict) -> list[str]:
    """The lines above the table: rounds and units, each device's start-up and copy bandwidth,
    the host's."""
    s = doc["settings"]
    lines = [
        f"clconv {doc['clconv']} bench: medians of {s['repeat']} interleaved rounds; times in ms; "
        "median/min: end to end (numpy in, numpy out); kernels: device-only; 1st: first call "
        "(builds programs); %bw: of the copy bandwidth below"
    ]
    for d in doc["devices"]:
        lines.append(f"device {d['device']}: start-up {d['startup_ms']:.0f} ms, buffer copy {d['copy_gb_s']:.1f} GB/s")
    lines.append(
        f"host: numpy copy {doc['host']['copy_gb_s']:.1f} GB/s; references: " + "; ".join(doc["host"]["references"])
    )
    return lines


def format_value(value, unit) -> str:
    """A target's value in its unit: x1.23 for speed-ups, 1.50 s, 12.3 MiB; 'not measured'."""
    if value is None:
        return "not measured"
    if unit == SPEEDUP:
        return f"x{value:.2f}"
    return f"{value:.2f} {unit}" if unit == "s" else f"{value:.1f} {unit}"


def format_targets(evaluated: list[dict], details: dict | None = None) -> list[str]:
    """The targets as a table: workload, measured value, goal, met (yes / NO / - when not
    measured or for information); each target's detail indented below it."""
    details = details or {}
    lines = [f"{'target':<62} {'measured':>13} {'goal':>12}  met"]
    for e in evaluated:
        goal = "info" if e["op"] == "info" else f"{e['op']} {format_value(e['threshold'], e['unit'])}"
        met = {True: "yes", False: "NO", None: "-"}[e["met"]]
        lines.append(f"{e['workload']:<62} {format_value(e['value'], e['unit']):>13} {goal:>12}  {met}")
        if details.get(e["key"]):
            lines.append(f"    {details[e['key']]}")
    return lines


def write_json(doc: dict, path: str) -> None:
    """Write ``doc`` to ``path`` as JSON, atomically; NaN and infinities as null."""
    write_atomically(path, lambda fo: fo.write((json.dumps(_finite(doc), indent=1) + "\n").encode("utf-8")))


def _finite(value):
    """NaN and infinities become None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value
