"""``clconv bench``: the project's algorithms against numpy/scipy and OpenCV, on one or more devices.

How it measures (PERF-NOTES: the machine is shared and noisy, so trust ratios): every candidate of
a workload (each clconv algorithm on each device, and each reference) is called once first, timed
apart, and its output checked against a float64 oracle; then ``repeat`` interleaved rounds; medians
and minimums over rounds, speed-ups as medians of per-round ratios.

The modules, one job each:

- ``settings``   the options: defaults, --quick, validation into ``Settings``
- ``checks``     reproducible images, the float64 oracle, tolerances, errors
- ``harness``    the one timing harness (also used by ``benchmarks/``): rounds, medians, ratios, rows
- ``references`` scipy and OpenCV doing the same work; host and device copy bandwidth
- ``sweep``      the plain sweep and the JSON document
- ``targets``    the performance goals (``--preset targets``) and how a value meets one
- ``goals``      the preset's run: each goal's workload measured
- ``process``    whole-process comparisons (``clconv apply``/``batch`` vs Pillow + cv2, vips)
- ``peak_memory`` one convolve's peak memory, in a fresh process
- ``report``     the printed tables and the JSON file
- ``plot``       --plot

This package imports no click; scipy, cv2 and matplotlib are imported inside functions. The CLI
calls ``run_cli(options, echo)``; ``run(options, echo)`` returns the JSON document.
"""

from __future__ import annotations

from collections.abc import Callable

from clconv.bench.settings import BenchOptions, Settings, check_output_folder, parse_size, settings_from
from clconv.errors import OptionError

__all__ = ["BenchOptions", "Settings", "parse_size", "run", "run_cli", "settings_from"]


def _print(doc: dict, echo: Callable[[str], object]) -> None:
    from clconv.bench.report import format_header, format_table, format_targets

    for line in format_header(doc) + format_table(doc["results"]) + [f"note: {n}" for n in doc["notes"]]:
        echo(line)
    if "targets" in doc:
        echo("")
        details = {e["key"]: e.get("detail") for e in doc["targets"]}
        for line in format_targets(doc["targets"], details):
            echo(line)


def run(options: BenchOptions, echo: Callable[[str], object]) -> dict:
    """Validate ``options``, measure, print the table (and targets) through ``echo``, write
    --json/--plot; returns the JSON document."""
    from clconv.bench import plot, report
    from clconv.bench.goals import run_targets
    from clconv.bench.sweep import run_bench

    settings = settings_from(options)
    for path, option in ((settings.json, "--json"), (settings.plot, "--plot")):
        if path:
            check_output_folder(path, option)
    if settings.plot and not plot.plot_available():
        raise OptionError("--plot", "needs matplotlib (pip install 'clconv[bench]')")
    doc = run_targets(settings, echo) if settings.preset == "targets" else run_bench(settings, echo)
    _print(doc, echo)
    if settings.json:
        report.write_json(doc, settings.json)
    if settings.plot:
        plot.write_plot(doc, settings.plot)
    if not doc["ok"]:
        echo("bench: some outputs were wrong or failed (rows marked FAIL)")
    return doc


def run_cli(options: BenchOptions, echo: Callable[[str], object]) -> int:
    """What ``clconv bench`` calls. ``options`` keys (all optional):

    sizes: list of (h, w) pairs (or 'WxH' strings); kernels: list of spec strings;
    dtypes: list of 'uint8' | 'uint16' | 'float32'; channels: int or list of ints;
    algorithm: 'all' (default) | 'auto' | a REGISTRY name; devices: list of specs, or 'all',
    or None (default device); repeat: int or None; quick: bool; preset: None | 'targets';
    json: path or None; plot: path or None; border: str (default 'reflect').

    Returns the exit code: 0, or 1 when any output was wrong or a candidate failed (the table and
    files are still written). Bad options raise OptionError (exit 2 through the CLI's boundary).
    """
    doc = run(options, echo)
    return 0 if doc["ok"] else 1
