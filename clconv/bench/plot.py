"""``clconv bench --plot FILE.png``: a figure that reads at a glance (matplotlib, imported here only).

- The targets preset: one horizontal bar per speed-up goal (reference time / clconv time), its
  whole workload as the label, the goal a black mark across its bar, the bar green where the goal
  is met, red where not, grey where not measured; the goals kept for information (memory,
  seconds) listed under the bars.
- A sweep: Mpix/s end to end (log scale), one colour per algorithm or reference. Lines only where
  the x axis is a quantity: kernels of one family at several sizes (x: taps, a panel per image
  size, dtype and channel count) or one kernel at several image sizes (x: pixels, a panel per
  kernel); unrelated kernels are grouped bars, one group per kernel, never joined by a line.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from clconv.atomic import write_atomically
from clconv.bench.report import format_value
from clconv.bench.targets import SPEEDUP
from clconv.errors import OptionError

if TYPE_CHECKING:
    from matplotlib.artist import Artist

TARGET_LABEL_WIDTH = 34
KERNEL_LABEL_WIDTH = 16
MET_COLOURS = {True: "tab:green", False: "tab:red", None: "tab:gray"}
X_LABELS = {"taps": "kernel taps (log scale)", "pixels": "image pixels (log scale)", "bars": "kernel"}


def plot_available() -> bool:
    """Whether matplotlib can be imported (--plot needs it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def wrap_label(text: str, width: int) -> str:
    """``text`` on lines of about ``width`` characters, broken only after a space, comma or colon,
    so that nothing is cut: a word longer than ``width`` keeps a line of its own."""
    lines, line = [], ""
    for piece in re.findall(r"[^\s,:]+[\s,:]*|[\s,:]+", text):  # a word and the separators after it
        if line.strip() and len((line + piece).rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    return "\n".join(lines + [line.rstrip()])


def write_plot(doc: dict, path: str) -> None:
    """The targets' bars for the preset, else the sweep's throughput, as a PNG written atomically."""
    if doc.get("targets"):
        fig = targets_figure(doc["targets"], f"clconv {doc['clconv']} bench --preset targets on {doc['device']}")
    else:
        fig = sweep_figure(doc["results"])
    write_atomically(path, lambda fo: fig.savefig(fo, format="png", dpi=100))


# --------------------------------------------------------------------------- the targets preset


def bar_text(e: dict) -> str:
    """What stands beside a target's bar: its value and its goal."""
    goal = "" if e["threshold"] is None else f", goal {format_value(e['threshold'], e['unit'])}"
    return format_value(e["value"], e["unit"]) + goal


def targets_figure(evaluated: list[dict], title: str = "clconv bench --preset targets"):
    """One bar per speed-up target, the goal drawn across it (a line with gid 'goal KEY')."""
    from matplotlib.figure import Figure

    bars = [e for e in evaluated if e["unit"] == SPEEDUP]
    info = [e for e in evaluated if e["unit"] != SPEEDUP]
    if not bars:
        raise OptionError("--plot", "no speed-up targets to plot")
    fig = Figure(figsize=(11, 1.6 + 0.62 * len(bars) + 0.18 * len(info)), layout="constrained")
    if info:
        ax, notes = fig.subplots(2, 1, height_ratios=[0.62 * len(bars), 0.18 * len(info)])
        notes.axis("off")
        notes.text(
            0,
            1,
            "\n".join(f"{e['workload']}: {format_value(e['value'], e['unit'])} (for information)" for e in info),
            va="top",
            fontsize="small",
            transform=notes.transAxes,
        )
    else:
        ax = fig.subplots()
    values = [e["value"] or 0.0 for e in bars]
    right = 1.35 * max([1.0, *values, *(e["threshold"] or 0.0 for e in bars)])
    ax.barh(range(len(bars)), values, height=0.6, color=[MET_COLOURS[e["met"]] for e in bars])
    for y, e in enumerate(bars):
        if e["threshold"] is not None:
            ax.plot([e["threshold"]] * 2, [y - 0.42, y + 0.42], color="black", linewidth=3, gid=f"goal {e['key']}")
        end = max(e["value"] or 0.0, e["threshold"] or 0.0)
        ax.text(end + 0.01 * right, y, " " + bar_text(e), va="center", fontsize="small")
    ax.axvline(1.0, color="0.35", linestyle=":", linewidth=1)
    ax.set_yticks(range(len(bars)), [wrap_label(e["workload"], TARGET_LABEL_WIDTH) for e in bars], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, right)
    ax.set_xlabel("speed-up: reference time / clconv time, median of per-round ratios (right of x1: clconv faster)")
    fig.suptitle(wrap_label(title, 90))
    ax.grid(True, axis="x", alpha=0.3)
    _targets_legend(fig)
    return fig


def _targets_legend(fig) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(color=MET_COLOURS[True], label="goal met"),
        Patch(color=MET_COLOURS[False], label="goal not met"),
        Patch(color=MET_COLOURS[None], label="not measured"),
        Line2D([], [], color="black", linewidth=3, label="goal"),
        Line2D([], [], color="0.35", linestyle=":", label="x1: as fast as the reference"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small")


# --------------------------------------------------------------------------- sweeps


def series_label(row: dict) -> str:
    """The legend's name for a row: the reference's name, or clconv's algorithm and device."""
    return row["algorithm"] if row["reference"] else f"clconv {row['algorithm']} ({row['device'].split()[0]})"


def _family(spec: str) -> str:
    return spec.split(":")[0].strip().lower()


def _taps(row: dict) -> int:
    return row["kernel_shape"][0] * row["kernel_shape"][1]


def sweep_layout(rows: list[dict]) -> str:
    """'taps' when the kernels are one family at different numbers of taps, else 'pixels' when
    the image size varies, else 'bars' (kernels that no quantity orders)."""
    taps = {r["kernel"]: _taps(r) for r in rows}
    if len(taps) > 1 and len({_family(k) for k in taps}) == 1 and len(set(taps.values())) == len(taps):
        return "taps"
    if len({r["size"] for r in rows}) > 1:
        return "pixels"
    return "bars"


def _point(row: dict, layout: str) -> tuple:
    """(panel key, panel title, x, tick label) of a row in ``layout``."""
    dtype, channels = row["dtype"], row["channels"]
    if layout == "pixels":
        w, h = (int(v) for v in row["size"].split("x"))
        return (row["kernel"], dtype, channels), f"{row['kernel']} x{channels} {dtype}", w * h, row["size"]
    title = f"{row['size']} x{channels} {dtype}"
    if layout == "taps":
        return (row["size"], dtype, channels), title, _taps(row), "x".join(map(str, row["kernel_shape"]))
    return (
        (row["size"], dtype, channels),
        title,
        (_taps(row), row["kernel"]),
        wrap_label(row["kernel"], KERNEL_LABEL_WIDTH),
    )


def sweep_panels(rows: list[dict], layout: str) -> dict:
    """{panel key: {"title", "ticks": {x: label}, "series": {series label: {x: Mpix/s}}}}."""
    panels: dict = {}
    for r in rows:
        key, title, x, tick = _point(r, layout)
        panel = panels.setdefault(key, {"title": title, "ticks": {}, "series": {}})
        panel["ticks"][x] = tick
        panel["series"].setdefault(series_label(r), {})[x] = r["mpix_s"]
    return panels


def _draw_lines(ax, panel: dict, colour: dict) -> None:
    from matplotlib.ticker import NullLocator

    for label, points in panel["series"].items():
        xs = sorted(points)
        ax.plot(
            xs,
            [points[x] for x in xs],
            marker="o",
            color=colour[label],
            linestyle="-" if label.startswith("clconv") else "--",
            label=label,
        )
    ax.set_xscale("log")
    ticks = sorted(panel["ticks"])
    ax.set_xticks(ticks, [panel["ticks"][x] for x in ticks], fontsize="small")
    ax.xaxis.set_minor_locator(NullLocator())


def _draw_bars(ax, panel: dict, colour: dict) -> None:
    groups = sorted(panel["ticks"])
    width = 0.8 / len(panel["series"])
    for i, (label, points) in enumerate(panel["series"].items()):
        xs = [x for x in groups if x in points]
        offset = (i - (len(panel["series"]) - 1) / 2) * width
        ax.bar(
            [groups.index(x) + offset for x in xs],
            [points[x] for x in xs],
            width,
            color=colour[label],
            hatch=None if label.startswith("clconv") else "//",
            edgecolor="white",
            label=label,
        )
    ax.set_xticks(range(len(groups)), [panel["ticks"][x] for x in groups], fontsize="small")


def sweep_figure(rows: list[dict]):
    """Mpix/s end to end: lines over taps or pixels where those order the workloads, else bars."""
    from matplotlib.figure import Figure

    rows = [r for r in rows if r["mpix_s"] is not None and r.get("kernel_shape")]
    if not rows:
        raise OptionError("--plot", "no timed convolution rows to plot")
    layout = sweep_layout(rows)
    panels = sweep_panels(rows, layout)
    columns = min(3, len(panels))
    lines = -(-len(panels) // columns)
    fig = Figure(figsize=(6.5 * columns + 2.5, 4.8 * lines), layout="constrained")
    axes = fig.subplots(lines, columns, squeeze=False).ravel()
    # One colour per series across every panel, so the single legend tells them apart.
    labels = sorted({label for panel in panels.values() for label in panel["series"]})
    colour = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for ax, panel in zip(axes, panels.values()):
        (_draw_bars if layout == "bars" else _draw_lines)(ax, panel, colour)
        ax.set_title(wrap_label(panel["title"], 48))
        ax.set_xlabel(X_LABELS[layout])
        ax.set_ylabel("Mpix/s, end to end")
        ax.set_yscale("log")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    legend: dict[str, Artist] = {}
    for ax in axes[: len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="outside right upper", fontsize="small")
    return fig
