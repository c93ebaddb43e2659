"""clconv bench --plot: the targets preset as one bar per speed-up goal with whole labels and the
goal drawn on its bar; sweeps as lines only over a real quantity (taps, pixels), else bars."""
from __future__ import annotations

import re

import pytest

from clconv.bench import plot
from clconv.bench.targets import SPEEDUP, TARGETS, evaluate_targets

pytest.importorskip("matplotlib")

SPEEDUP_TARGETS = [t for t in TARGETS if t.unit == SPEEDUP]


def visible(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("text, width", [
    ("3x3 float32 4096x4096 vs cv2.filter2D", 12),
    ("clconv batch --jobs 2, 20 PNGs 1024x768 vs Pillow+cv2 Pool(2)", 34),
    ("gaussian:sigma=2,truncate=3,size=9", 10),       # breaks after commas and colons
    ("a-single-word-longer-than-the-width", 8),       # kept whole on its own line
    ("box", 16),
])
def test_wrapped_labels_lose_nothing(text, width):
    label = plot.wrap_label(text, width)
    assert visible(label) == visible(text)
    for line in label.split("\n"):
        assert line and (len(line) <= width or not re.search(r"[\s,:]", line.rstrip(",:"))), line


def speedup_doc() -> dict:
    measured = {t.key: 0.5 + 0.1 * i for i, t in enumerate(SPEEDUP_TARGETS)}
    measured["apply_vs_vips"] = None                      # not measured: still one (empty) bar
    measured.update({"memory_direct": 152.3, "apply_cold": 1.47})
    return {"clconv": "0", "device": "0:0 test device", "results": [], "targets": evaluate_targets(measured)}


def test_targets_are_one_bar_each_with_the_whole_workload_and_the_goal_on_it(tmp_path):
    doc = speedup_doc()
    fig = plot.targets_figure(doc["targets"])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert [visible(label) for label in labels] == [visible(t.workload) for t in SPEEDUP_TARGETS]
    assert all(len(line) <= plot.TARGET_LABEL_WIDTH for label in labels for line in label.split("\n"))
    bars = ax.patches
    assert len(bars) == len(SPEEDUP_TARGETS)
    by_key = {e["key"]: e for e in doc["targets"]}
    for bar, t in zip(bars, SPEEDUP_TARGETS):
        assert bar.get_width() == pytest.approx(by_key[t.key]["value"] or 0.0)
    goals = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
    assert set(goals) == {f"goal {t.key}" for t in SPEEDUP_TARGETS}
    for y, t in enumerate(SPEEDUP_TARGETS):  # a vertical mark at the goal, across its own bar
        xs, ys = goals[f"goal {t.key}"].get_data()
        assert list(xs) == [t.threshold, t.threshold] and min(ys) < y < max(ys)
    texts = [text.get_text() for text in ax.texts]
    assert " x0.50, goal x1.70" in texts and " not measured, goal x1.00" in texts
    notes = "\n".join(text.get_text() for a in fig.axes[1:] for text in a.texts)
    assert "peak memory, 4096x4096 RGB float32, 3x3 sharpen: 152.3 MiB" in notes and "1.47 s" in notes
    png = tmp_path / "targets.png"
    plot.write_plot(doc, str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def sweep_row(kernel, shape, size="64x48", algorithm="direct", reference=False, mpix_s=10.0) -> dict:
    return {"algorithm": algorithm, "device": "host" if reference else "0:0 test", "reference": reference,
            "size": size, "kernel": kernel, "dtype": "float32", "channels": 1, "kernel_shape": list(shape),
            "mpix_s": mpix_s}


def sweep(kernels, sizes=("64x48",)) -> list[dict]:
    return [sweep_row(k, shape, size, name, name.startswith("cv2"), 5.0 + i)
            for size in sizes for k, shape in kernels for i, name in enumerate(("direct", "cv2.filter2D"))]


UNRELATED = [("bank 8 x random 3x3", (3, 3)), ("random 31x31", (31, 31)), ("3x1: 1,0,-1", (3, 1))]
FAMILY = [("gaussian:size=3", (3, 3)), ("gaussian:size=7", (7, 7)), ("gaussian:sigma=3", (25, 25))]


@pytest.mark.parametrize("rows, layout", [
    (sweep(FAMILY), "taps"),
    (sweep(FAMILY, ("64x48", "128x96")), "taps"),
    (sweep(UNRELATED), "bars"),
    (sweep([("sobel-x", (3, 3)), ("box:size=3", (3, 3))]), "bars"),   # two families
    (sweep([("box", (3, 3)), ("box:size=3", (3, 3))]), "bars"),       # one family, same taps
    (sweep([("sobel-x", (3, 3))], ("64x48", "128x96")), "pixels"),
    (sweep(UNRELATED, ("64x48", "128x96")), "pixels"),
    (sweep([("sobel-x", (3, 3))]), "bars"),
])
def test_lines_only_where_the_x_axis_is_a_quantity(rows, layout):
    assert plot.sweep_layout(rows) == layout


def test_unrelated_kernels_are_bars_with_whole_labels():
    fig = plot.sweep_figure(sweep(UNRELATED))
    ax = fig.axes[0]
    assert ax.get_lines() == []  # nothing joins a bank to a 31x31 kernel
    assert len(ax.patches) == 2 * len(UNRELATED)
    labels = [visible(t.get_text()) for t in ax.get_xticklabels()]
    assert labels == [visible(k) for k, _ in sorted(UNRELATED, key=lambda k: (k[1][0] * k[1][1], k[0]))]


def test_a_kernel_family_is_lines_over_taps_and_one_kernel_lines_over_pixels():
    fig = plot.sweep_figure(sweep(FAMILY))
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and all(list(line.get_xdata()) == [9, 49, 625] for line in lines)
    assert fig.axes[0].get_xscale() == "log" and not fig.axes[0].patches
    fig = plot.sweep_figure(sweep([("sobel-x", (3, 3))], ("64x48", "128x96")))
    assert [list(line.get_xdata()) for line in fig.axes[0].get_lines()] == [[3072, 12288]] * 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["64x48", "128x96"]
