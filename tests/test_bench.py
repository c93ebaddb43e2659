"""clconv.bench: the quick sweep in-process on tiny images, its rows and JSON (SPEC "bench"), the
checks that flag wrong outputs, the interleaved ratios, the plot, and the targets as a table."""
from __future__ import annotations

import json
import os
import statistics
import sys

import numpy as np
import pytest

import clconv
from clconv import bench
from clconv.bench import checks, goals, harness, peak_memory, plot, process, references, report, sweep, targets
from clconv.algorithms import REGISTRY
from clconv.errors import ClconvError, OptionError
from clconv.kernels import parse_spec

pytestmark = pytest.mark.xdist_group("bench")  # one pytest-xdist worker: the module fixtures run once

SPEC_ROW_KEYS = {"algorithm", "device", "size", "kernel", "dtype", "median_ms", "min_ms", "mpix_s", "gflop_s",
                 "gb_s", "max_error", "reference"}
TINY = {"quick": True, "sizes": [(24, 40), (33, 50)], "kernels": ["gaussian:size=3", "sharpen"],
        "dtypes": ["float32", "uint8"], "repeat": 2}


def has_cv2() -> bool:
    return references.opencv() is not None


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One quick bench on tiny images, with --json (and --plot where matplotlib is installed)."""
    folder = tmp_path_factory.mktemp("bench")
    options = dict(TINY, json=str(folder / "bench.json"))
    if plot.plot_available():
        options["plot"] = str(folder / "bench.png")
    lines: list[str] = []
    code = bench.run_cli(options, lines.append)
    doc = json.loads((folder / "bench.json").read_text())
    return {"code": code, "lines": lines, "doc": doc, "folder": folder, "options": options}


# ---------------------------------------------------------------- the quick sweep, its rows and JSON


def test_quick_bench_passes_and_the_json_follows_the_spec(tiny_run):
    assert tiny_run["code"] == 0, "\n".join(tiny_run["lines"])
    doc = tiny_run["doc"]
    assert doc["clconv"] == clconv.__version__
    assert isinstance(doc["device"], str) and doc["device"]
    assert doc["ok"] is True
    assert doc["results"]
    for row in doc["results"]:
        assert SPEC_ROW_KEYS <= set(row), set(SPEC_ROW_KEYS) - set(row)
        assert isinstance(row["algorithm"], str) and isinstance(row["reference"], bool)
        assert row["dtype"] in ("float32", "uint8") and row["size"] in ("40x24", "50x33")
        for key in ("median_ms", "min_ms", "mpix_s", "gflop_s", "gb_s", "first_call_ms"):
            assert isinstance(row[key], float) and row[key] > 0, (key, row)
        assert row["min_ms"] <= row["median_ms"]
        assert row["rounds"] == TINY["repeat"]


def test_every_row_is_within_tolerance_of_the_float64_oracle(tiny_run):
    for row in tiny_run["doc"]["results"]:
        assert row["ok"] and row["error"] is None, row
        assert 0.0 <= row["max_error"] <= row["tolerance"], row
        if row["dtype"] == "uint8":
            assert row["tolerance"] == 1.0


def test_every_workload_has_each_algorithm_and_the_references(tiny_run):
    rows = tiny_run["doc"]["results"]
    workloads = {(r["size"], r["dtype"], r["kernel"]) for r in rows}
    assert len(workloads) == 2 * 2 * 2
    for size, dtype, spec in workloads:
        here = [r for r in rows if (r["size"], r["dtype"], r["kernel"]) == (size, dtype, spec)]
        mine = {r["algorithm"] for r in here if not r["reference"]}
        refs = {r["algorithm"] for r in here if r["reference"]}
        kernel = parse_spec(spec)
        assert mine == {n for n, a in REGISTRY.items() if a.refuses(kernel) is None}
        assert "scipy.ndimage.correlate" in refs
        if has_cv2():
            assert "cv2.filter2D" in refs
            assert ("cv2.sepFilter2D" in refs) == (kernel.separable_factors() is not None)
        for r in here:
            if not r["reference"]:  # a speed-up against each reference, end to end and device-only
                assert set(r["speedup"]) == refs and all(v > 0 for v in r["speedup"].values())
                assert set(r["device_speedup"]) == refs
                assert 0 < r["device_median_ms"] and r["out_reused"] is True
    notes = tiny_run["doc"]["notes"]  # an algorithm that refuses a kernel is named in a note, not timed
    refused = {f"{name} skipped for {spec}" for spec in TINY["kernels"] for name, a in REGISTRY.items()
               if a.refuses(parse_spec(spec)) is not None}
    assert {n.split(":")[0] for n in notes} == refused


def test_the_table_is_printed(tiny_run):
    text = "\n".join(tiny_run["lines"])
    assert "median" in text and "GFLOP/s" in text and "speed-up" in text
    assert "FAIL" not in text
    table = [line for line in tiny_run["lines"] if not line.startswith("[")]  # not the progress lines
    assert sum(" 40x24 " in line for line in table) == sum(
        r["size"] == "40x24" for r in tiny_run["doc"]["results"])


def test_plot_writes_a_png(tiny_run):
    pytest.importorskip("matplotlib")
    png = tiny_run["folder"] / "bench.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5000
    assert not [p for p in tiny_run["folder"].iterdir() if p.name.startswith(".clconv-bench-")]


def test_one_algorithm_on_mirror_borders_with_rgb():
    lines: list[str] = []
    doc = bench.run({"sizes": ["20x17"], "kernels": ["sobel-x", "emboss"], "dtypes": ["uint8", "uint16"],
                     "channels": [3], "algorithm": "direct", "repeat": 1, "border": "reflect101"}, lines.append)
    assert doc["ok"], "\n".join(lines)
    assert {r["algorithm"] for r in doc["results"] if not r["reference"]} == {"direct"}
    assert {r["border"] for r in doc["results"]} == {"mirror"}
    assert {r["channels"] for r in doc["results"]} == {3}


def test_wrap_has_no_opencv_reference():
    doc = bench.run({"sizes": [(16, 16)], "kernels": ["box:size=3"], "dtypes": ["float32"], "algorithm": "auto",
                     "repeat": 1, "border": "wrap"}, lambda line: None)
    assert doc["ok"]
    assert {r["algorithm"] for r in doc["results"] if r["reference"]} == {"scipy.ndimage.correlate"}


def test_without_opencv_scipy_is_the_only_reference(monkeypatch):
    monkeypatch.setattr(references, "opencv", lambda: None)
    doc = bench.run({"sizes": [(16, 16)], "kernels": ["box:size=3"], "dtypes": ["uint8"], "algorithm": "auto",
                     "repeat": 1}, lambda line: None)
    assert doc["ok"] and doc["host"]["references"] == [references.host_description("scipy")]
    assert {r["algorithm"] for r in doc["results"] if r["reference"]} == {"scipy.ndimage.correlate"}


def test_quick_settings_are_the_small_sweep():
    """--quick's workloads (how long they take is the benchmark's business, README: under a
    minute on 2 cores, not a unit test's); the run itself is exercised on tiny sizes above."""
    s = bench.settings_from({"quick": True})
    assert s.sizes == ((512, 512), (1024, 1024)) and s.repeat == 3
    assert s.kernels == ("gaussian:size=3", "gaussian:size=7") and s.dtypes == ("float32", "uint8")
    given = bench.settings_from({"quick": True, "sizes": [(64, 32)], "repeat": 2})
    assert given.sizes == ((64, 32),) and given.repeat == 2  # what is given wins over --quick


# ---------------------------------------------------------------- wrong outputs are reported


def test_a_reference_with_a_wrong_output_is_flagged(monkeypatch, tmp_path):
    real = references.scipy_reference

    def garbage(image, kernel, border):
        ref = real(image, kernel, border)
        return references.Reference(ref.name, ref.device, lambda: np.full_like(image, 7))

    monkeypatch.setattr(references, "scipy_reference", garbage)
    lines: list[str] = []
    code = bench.run_cli({"sizes": [(16, 24)], "kernels": ["sharpen"], "dtypes": ["float32"], "algorithm": "direct",
                          "repeat": 1, "json": str(tmp_path / "b.json")}, lines.append)
    assert code == 1
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    flagged = [r for r in rows if r["algorithm"] == "scipy.ndimage.correlate"]
    assert len(flagged) == 1 and flagged[0]["ok"] is False and "wrong output" in flagged[0]["error"]
    assert flagged[0]["max_error"] > flagged[0]["tolerance"]
    assert all(r["ok"] for r in rows if r is not flagged[0])
    assert any("FAIL" in line for line in lines)


def test_a_wrong_clconv_output_is_flagged(monkeypatch):
    def wrong(image, kernel, border="reflect", device=None, algorithm="auto", *, out=None, **options):
        out[...] = 3  # plausible-looking, but not the correlation
        return out

    monkeypatch.setattr(clconv, "convolve", wrong, raising=False)
    doc = bench.run({"sizes": [(16, 24)], "kernels": ["box:size=3"], "dtypes": ["uint8"], "algorithm": "auto",
                     "repeat": 1}, lambda line: None)
    mine = [r for r in doc["results"] if not r["reference"]]
    assert doc["ok"] is False and len(mine) == 1
    assert mine[0]["ok"] is False and mine[0]["max_error"] > 1


def test_a_candidate_that_raises_is_a_failed_row_without_timings():
    def boom():
        raise RuntimeError("device lost\nmore detail")

    good = harness.Candidate("good", "good", "host", lambda: np.zeros(3), lambda out: 0.0)
    bad = harness.Candidate("bad", "bad", "host", boom, lambda out: 0.0)
    results = harness.measure([good, bad], repeat=2, tol=1.0)
    assert results["bad"].error == "RuntimeError: device lost" and not results["bad"].timed
    assert len([s for s in results["good"].wall if s is not None]) == 2


# ---------------------------------------------------------------- rounds and ratios


def test_rounds_interleave_with_a_rotating_order():
    calls: list[str] = []
    candidates = [harness.Candidate(k, k, "host", (lambda k=k: calls.append(k) or np.zeros(1)), lambda out: 0.0)
                  for k in "abc"]
    harness.measure(candidates, repeat=3, tol=0.0)
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")


def test_speedups_are_medians_of_per_round_ratios():
    mine = harness.Candidate("direct@0:0", "direct", "dev", None, None, rt=object())
    ref = harness.Candidate("cv2.filter2D", "cv2.filter2D", "host", None, None)
    results = {
        mine.key: harness.Measured(first_s=1.0, max_error=0.0, timed=True, wall=[1.0, 2.0, 4.0],
                                   device=[0.5, 1.0, 2.0]),
        ref.key: harness.Measured(first_s=1.0, max_error=0.0, timed=True, wall=[3.0, 2.0, 2.0], device=[None] * 3),
    }
    work = {"size": "8x8", "kernel": "k", "dtype": "float32", "channels": 1, "border": "reflect", "pixels": 64,
            "flops": 2e9, "bytes": 1e9, "tolerance": 1.0, "kernel_shape": [3, 3]}
    rows = harness.make_rows([mine, ref], results, work, {"dev": 10.0, "host": 20.0})
    row = rows[0]
    assert row["speedup"]["cv2.filter2D"] == pytest.approx(statistics.median([3.0, 1.0, 0.5]))
    assert row["device_speedup"]["cv2.filter2D"] == pytest.approx(statistics.median([6.0, 2.0, 1.0]))
    assert row["median_ms"] == pytest.approx(2000.0) and row["min_ms"] == pytest.approx(1000.0)
    assert row["gflop_s"] == pytest.approx(1.0) and row["gb_s"] == pytest.approx(0.5)
    assert row["bw_pct"] == pytest.approx(5.0) and row["device_bw_pct"] == pytest.approx(10.0)
    assert rows[1]["reference"] and rows[1]["speedup"] == {} and rows[1]["bw_pct"] == pytest.approx(100 * 0.5 / 20)


# ---------------------------------------------------------------- oracle, tolerance, options


def test_oracle_applies_the_integer_mapping_and_tolerances():
    image = checks.make_image((9, 11), 1, "uint8", seed=4)
    got = checks.oracle(image, parse_spec("sobel-x"), "reflect")  # abs by default, then rounded and clipped
    assert got.min() >= 0 and got.max() <= 255 and np.array_equal(got, np.rint(got))
    assert checks.tolerance(image, np.ones((3, 3))) == 1.0
    floats = np.array([[0.0, 2.0], [1.0, 0.5]], np.float32)
    assert checks.tolerance(floats, np.full((3, 3), 0.5)) == pytest.approx(1e-4 * 2.0 * 4.5)
    assert checks.tolerance(floats, np.full((3, 3), 0.01)) == pytest.approx(1e-4 * 2.0)
    assert checks.max_error(np.zeros((2, 2)), np.ones((2, 3))) == float("inf")
    assert checks.max_error(np.array([[np.nan]]), np.zeros((1, 1))) == float("inf")


def test_option_dict_defaults_and_validation():
    quick = bench.settings_from({"quick": True})
    assert quick.sizes == ((512, 512), (1024, 1024)) and quick.repeat == 3
    assert quick.dtypes == ("float32", "uint8") and quick.algorithm == "all" and quick.devices == (None,)
    custom = bench.settings_from({"quick": True, "sizes": ["3840x2160", (5, 7)], "repeat": 9, "channels": 3,
                                  "devices": ["cpu"], "dtypes": ["UINT16"]})
    assert custom.sizes == ((2160, 3840), (5, 7)) and custom.repeat == 9 and custom.channels == (3,)
    assert custom.devices == ("cpu",) and custom.dtypes == ("uint16",)
    assert bench.parse_size("64") == (64, 64)
    for bad in ({"dtypes": ["float64"]}, {"sizes": ["12y4"]}, {"sizes": ["0x4"]}, {"algorithm": "no-such-algorithm"},
                {"repeat": 0}, {"preset": "everything"}, {"channels": [0]}, {"border": "sideways"}):
        with pytest.raises(OptionError):
            bench.settings_from(bad)
    with pytest.raises(OptionError, match="gradient magnitude"):
        bench.run({"kernels": ["sobel"], "sizes": [(8, 8)], "repeat": 1}, lambda line: None)
    with pytest.raises(ClconvError):
        bench.run({"kernels": ["no-such-kernel"], "sizes": [(8, 8)], "repeat": 1}, lambda line: None)


def test_output_paths_are_checked_before_measuring(tmp_path):
    with pytest.raises(OptionError, match="--json"):
        bench.run({"sizes": [(8, 8)], "json": str(tmp_path / "missing" / "b.json")}, lambda line: None)


# ---------------------------------------------------------------- the targets preset

# Issue 10's goal table: key -> minimum speed-up (OpenCV's, numpy's or the script's time / clconv's).
ISSUE_GOALS = {"conv3x3_f32": 1.7, "sharpen_u8_rgb": 1.7, "gauss5_array": 1.2, "gauss15_array": 1.2,
               "gauss31_array": 1.2, "log15_rank2": 3.0, "dog15_rank2": 3.0, "dense31_f32": 1.3, "bank8_3x3": 1.5,
               "sgemm": 0.9, "apply_vs_cv2": 1.0, "apply_vs_vips": 1.0, "batch_vs_cv2": 1.0}
INFO = {"memory_direct": "MiB", "memory_separable": "MiB", "apply_warm": "s", "apply_cold": "s"}


def test_every_goal_of_the_issue_is_a_target_and_the_rest_are_for_information():
    by_key = {t.key: t for t in targets.TARGETS}
    assert len(by_key) == len(targets.TARGETS), "duplicate keys"
    assert set(by_key) == set(ISSUE_GOALS) | set(INFO)
    for key, goal in ISSUE_GOALS.items():
        t = by_key[key]
        assert (t.op, t.threshold, t.unit) == (">=", goal, "x"), key
    for key, unit in INFO.items():
        assert (by_key[key].op, by_key[key].threshold, by_key[key].unit) == ("info", None, unit), key
    assert len({t.workload for t in targets.TARGETS}) == len(targets.TARGETS)  # each line of the table says which
    assert all(len(t.workload) <= 62 for t in targets.TARGETS)  # the table's first column


@pytest.mark.parametrize(
    "measured, unmet, expected",
    [
        ({"conv3x3_f32": 1.8, "sgemm": 0.89, "log15_rank2": 3.0, "apply_vs_cv2": 1.0, "batch_vs_cv2": 0.99}, (), {
            "conv3x3_f32": True, "sgemm": False, "log15_rank2": True, "apply_vs_cv2": True, "batch_vs_cv2": False,
            "apply_vs_vips": None, "gauss5_array": None}),
        ({"gauss31_array": 1.2, "dense31_f32": 1.29, "bank8_3x3": float("nan"), "dog15_rank2": 2.99}, (), {
            "gauss31_array": True, "dense31_f32": False, "bank8_3x3": None, "dog15_rank2": False}),
        # informational rows are never met or missed, whatever their value
        ({"memory_direct": 1e6, "apply_cold": 0.1, "apply_warm": 99.0}, (), {
            "memory_direct": None, "apply_cold": None, "apply_warm": None}),
        # a goal's other condition (the same pixels as OpenCV) failed: not met even above the figure
        ({"sharpen_u8_rgb": 2.5, "conv3x3_f32": 2.5}, ("sharpen_u8_rgb",), {
            "sharpen_u8_rgb": False, "conv3x3_f32": True}),
        ({}, (), {t.key: None for t in targets.TARGETS}),
    ],
)
def test_target_evaluation_as_a_table(measured, unmet, expected):
    evaluated = {e["key"]: e for e in targets.evaluate_targets(measured, unmet=unmet)}
    assert list(evaluated) == [t.key for t in targets.TARGETS]
    for key, met in expected.items():
        assert evaluated[key]["met"] is met, key
    assert all(evaluated[k]["value"] is None for k in evaluated if k not in measured or measured[k] != measured[k])
    lines = report.format_targets(list(evaluated.values()))
    assert len(lines) == 1 + len(targets.TARGETS)
    assert all(line.endswith((" yes", " NO", " -")) for line in lines[1:])
    for line, t in zip(lines[1:], targets.TARGETS):
        assert line.startswith(t.workload)
        assert (" info " in line) == (t.op == "info")


def test_target_lines_format_values_goals_and_details():
    evaluated = targets.evaluate_targets({"conv3x3_f32": 1.234, "memory_direct": 12.34, "apply_cold": 1.5},
                                       targets=[t for t in targets.TARGETS
                                                if t.key in ("conv3x3_f32", "memory_direct", "apply_cold", "sgemm")])
    lines = report.format_targets(evaluated, {"conv3x3_f32": "clconv 1.0 ms", "sgemm": ""})
    assert lines[0].split() == ["target", "measured", "goal", "met"]
    assert lines[1].split()[-4:] == ["x1.23", ">=", "x1.70", "NO"]
    assert lines[2] == "    clconv 1.0 ms"
    assert lines[3].split()[-5:] == ["not", "measured", ">=", "x0.90", "-"]
    assert lines[4].split()[-4:] == ["12.3", "MiB", "info", "-"]
    assert lines[5].split()[-4:] == ["1.50", "s", "info", "-"]
    with pytest.raises(ValueError):
        targets.evaluate_targets({"k": 1.0}, targets=[targets.Target("k", "w", "f", "~", 1.0)])


def test_the_kernels_given_as_arrays():
    for n in (5, 15, 31):
        weights, g = targets.gaussian_array(n)
        assert weights.dtype == np.float32 and g.dtype == np.float32 and weights.shape == (n, n)
        g64 = targets.gaussian_1d(n, (n - 1) / 6)
        assert np.array_equal(weights, np.outer(g64, g64).astype(np.float32))
        assert float(weights.sum()) == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(np.outer(g, g), weights, rtol=1e-6, atol=0)  # what cv2.sepFilter2D gets
    for weights in (targets.log_array(), targets.dog_array()):
        assert weights.dtype == np.float32 and weights.shape == (15, 15)
        assert np.array_equal(weights, weights.T) and np.array_equal(weights, weights[::-1, ::-1])
        s = np.linalg.svd(weights.astype(np.float64), compute_uv=False)
        assert s[1] > 1e-3 * s[0] and s[2] < 1e-6 * s[0]  # rank 2, to float32 rounding
    log = targets.log_array().astype(np.float64)
    assert log[7, 7] < 0 and log[7, 7] == log.min()  # the centre of a Laplacian of Gaussian
    dog = targets.dog_array().astype(np.float64)
    assert dog[7, 7] > 0 and dog[0, 0] < 0  # centre positive, surround negative
    assert float(dog.sum()) == pytest.approx(0.0, abs=1e-6)


def test_goal_references_are_the_goals_only():
    pytest.importorskip("cv2")
    from clconv.kernels import Linear

    image = checks.make_image((20, 24), 1, "float32", seed=2)
    weights, g = targets.gaussian_array(5)
    kernel = Linear("gaussian 5x5 float32 array", weights)
    expected = checks.oracle(image, kernel, "reflect")
    tol = checks.tolerance(image, kernel.weights)
    (sep,) = references.goal_references(image, kernel, "cv2.sepFilter2D", factors=(g, g))
    assert sep.name == "cv2.sepFilter2D" and checks.max_error(sep.call(), expected) <= tol
    (f2d,) = references.goal_references(image, Linear("LoG", targets.log_array()), "cv2.filter2D")
    assert f2d.name == "cv2.filter2D"
    assert checks.max_error(f2d.call(), checks.oracle(image, Linear("LoG", targets.log_array()), "reflect")) <= tol


def test_convolution_rows_hand_convolve_the_array_and_time_only_the_given_references(monkeypatch):
    pytest.importorskip("cv2")
    from clconv.kernels import Linear

    seen = []
    real = clconv.convolve

    def spy(image, kernel, *args, **kwargs):
        seen.append(type(kernel))
        return real(image, kernel, *args, **kwargs)

    monkeypatch.setattr(clconv, "convolve", spy)
    d = sweep.open_devices((None,), lambda line: None)[0]
    image = checks.make_image((40, 48), 1, "float32", seed=5)
    weights = targets.dog_array()
    kernel = Linear("DoG array", weights)
    refs = references.goal_references(image, kernel, "cv2.filter2D")
    rows, _ = sweep.convolution_rows([d], image, kernel, "reflect", ["auto"], 2, {"host": 1.0}, refs, weights)
    assert seen and set(seen) == {np.ndarray}
    assert [(r["algorithm"], r["reference"]) for r in rows] == [("auto", False), ("cv2.filter2D", True)]
    assert all(r["ok"] and r["max_error"] <= r["tolerance"] for r in rows)
    speedup, _ = goals.speedup_against(rows, "cv2.filter2D")
    assert speedup is not None and speedup > 0
    assert "cv2.filter2D" in goals.detail(rows, "cv2.filter2D", speedup, None)
    no_refs, _ = sweep.convolution_rows([d], image, kernel, "reflect", ["auto"], 1, {"host": 1.0}, False)
    assert [r["algorithm"] for r in no_refs] == ["auto"]


# ---------------------------------------------------------------- whole-process comparisons


def test_rounds_of_whole_processes_interleave_after_a_warm_run():
    calls: list[str] = []
    seconds = {"clconv": iter([9.0, 1.0, 2.0, 4.0]), "cv2": iter([9.0, 2.0, 2.0, 2.0])}
    runs = {name: (lambda name=name: calls.append(name) or next(seconds[name])) for name in seconds}
    times = harness.interleaved(runs, rounds=3)
    assert calls == ["clconv", "cv2"] + ["clconv", "cv2"] + ["cv2", "clconv"] + ["clconv", "cv2"]
    assert times == {"clconv": [1.0, 2.0, 4.0], "cv2": [2.0, 2.0, 2.0]}  # the warm run is not timed
    assert harness.median_ratio(times["cv2"], times["clconv"]) == pytest.approx(1.0)
    assert harness.median_ratio([], []) is None
    assert harness.interleaved({"a": lambda: 1.0}, rounds=2, warm=False) == {"a": [1.0, 1.0]}


def test_the_scripts_and_the_vips_mask_carry_the_kernel_and_the_png_level():
    weights = parse_spec("sobel-x").weights
    one = process.cv2_one_liner(weights, 4)
    assert "\n" not in one and "compress_level=4" in one and "BORDER_REFLECT" in one
    assert "[[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]" in one
    script = process.cv2_pool_script(weights, 4)
    compile(script, "cv2_pool.py", "exec")
    assert "Pool(jobs)" in script and "compress_level=4" in script
    assert process.vips_mask(weights) == "3 3 1 0\n-1 0 1\n-2 0 2\n-1 0 1\n"
    assert process.png_level() == 4


def test_a_failing_command_says_why(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        process.run_timed([sys.executable, "-c", "import sys; sys.exit('boom')"])
    assert process.run_timed([sys.executable, "-c", "pass"]) > 0


def test_process_details_say_the_times_and_the_checks():
    found = {"clconv": [0.5, 0.6, 0.7], "cv2": [0.4, 0.4, 0.5], "errors": {"clconv": 0.0, "cv2": 0.0},
             "ok": {"clconv": True, "cv2": True}, "differ_cv2": 0, "rounds": 3, "command": "clconv apply"}
    line = goals.process_detail(found, "cv2")
    assert "median 0.600 s, cv2 0.400 s (3 interleaved rounds)" in line and "0 samples differ" in line
    wrong = dict(found, errors={"clconv": 7.0, "cv2": 0.0}, ok={"clconv": False, "cv2": True})
    assert "WRONG: clconv output off by 7" in goals.process_detail(wrong, "cv2")
    assert goals.process_detail({"error": "clconv: exit 1"}, "cv2") == "clconv: exit 1"
    assert goals.process_detail({"skipped": "no OpenCV"}, "cv2") == "no OpenCV"
    no_vips = dict(found, left_out={"vips": "vips not on PATH: skipped"})
    assert goals.process_detail(no_vips, "vips") == "vips not on PATH: skipped"


# A `vips` that fails as libvips' command line does on an operation it lacks, and one that does
# the work of `vips conv IN OUT[compression=N] MASK --precision integer` (correlation, negative
# sums clipped to 0, edges copied) with numpy alone: the stand-in tool, checked by the bench against
# the scipy oracle like any reference.
FAILING_VIPS = """#!{python}
import sys
sys.exit("vips: no such operation")
"""
FAKE_VIPS = """#!{python}
import sys
import numpy as np
from PIL import Image
_, src, out, mask = sys.argv[1:5]
rows = open(mask).read().split("\\n")
w = np.array([[float(v) for v in r.split()] for r in rows[1:] if r.strip()])
a = np.asarray(Image.open(src)).astype(np.float64)
kh, kw = w.shape
p = np.pad(a, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="edge")
o = sum(w[i, j] * p[i:i + a.shape[0], j:j + a.shape[1]] for i in range(kh) for j in range(kw))
Image.fromarray(np.clip(o, 0, 255).astype(np.uint8)).save(out.split("[")[0])
"""


def write_script(path, text):
    path.write_text(text.format(python=sys.executable))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory):
    """run_targets end to end once on tiny images (not the goals' sizes), with a `vips` first on
    PATH that fails. Its whole-process comparisons are the apply and batch tests below: clconv
    apply against the Pillow + cv2 one-liner (2 rounds, a 56x40 PNG), and clconv batch against a
    Pool of 2 (3 PNGs of 32x24)."""
    pytest.importorskip("cv2")
    folder = tmp_path_factory.mktemp("preset")
    (folder / "bin").mkdir()
    write_script(folder / "bin" / "vips", FAILING_VIPS)
    sizes = targets.TargetSizes(large=(40, 48), uhd=(24, 40), medium=(40, 40), sgemm=32, png=(40, 56), batch_files=3,
                                batch_png=(24, 32), jobs=2, apply_rounds=2, batch_rounds=1)
    keys = set(ISSUE_GOALS) | {"apply_warm"}
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        doc = goals.run_targets(bench.settings_from({"preset": "targets", "repeat": 1}), lines.append, sizes, keys)
    return {"doc": doc, "lines": lines, "keys": keys}


def test_apply_against_the_one_liner_on_a_small_png(preset_run):
    found = preset_run["doc"]["process"]["apply"]
    assert "error" not in found, found
    assert len(found["clconv"]) == len(found["cv2"]) == 2 and "vips" not in found
    assert found["ok"] == {"clconv": True, "cv2": True} and found["differ_cv2"] == 0
    assert found["vs_cv2"] > 0 and found["vs_vips"] is None
    assert found["left_out"]["vips"] in found["notes"]


def test_apply_against_a_vips_that_fails(preset_run):
    found = preset_run["doc"]["process"]["apply"]
    assert "error" not in found, found
    assert "vips" not in found and found["vs_vips"] is None
    assert "no such operation" in found["left_out"]["vips"]
    assert "vips failed" in goals.process_detail(found, "vips")


def test_batch_against_a_pool_on_small_pngs(preset_run):
    found = preset_run["doc"]["process"]["batch"]
    assert "error" not in found, found
    assert len(found["clconv"]) == len(found["cv2"]) == 1
    assert found["ok"] == {"clconv": True, "cv2": True} and found["differ_cv2"] == 0
    assert found["vs_cv2"] > 0 and found["files"] == 3 and found["jobs"] == 2


def test_the_preset_on_tiny_sizes_covers_every_goal(preset_run, tmp_path):
    """Every goal has a value or says why not, and --plot draws it; the cold-cache and memory
    subprocesses are tested below."""
    doc = preset_run["doc"]
    assert doc["ok"], "\n".join(preset_run["lines"])
    by_key = {e["key"]: e for e in doc["targets"]}
    assert set(by_key) == preset_run["keys"]
    for key, e in by_key.items():
        if key == "apply_vs_vips":  # the vips on PATH fails (not on PATH: see the test without OpenCV)
            assert e["value"] is None and "vips failed" in e["detail"]
            continue
        assert e["value"] is not None and e["value"] > 0, (key, e["detail"])
        assert e["detail"]
    assert any("sizes differ from the goals'" in n for n in doc["notes"])
    rows = doc["results"]
    assert all(r["ok"] for r in rows)
    mine = [r for r in rows if not r["reference"]]
    assert {r["algorithm"] for r in mine} == {"auto", "clconv.matmul"}
    assert {r["algorithm"] for r in rows if r["reference"]} == {
        "cv2.filter2D", "cv2.sepFilter2D", "8x cv2.filter2D", "8x scipy.ndimage.correlate", "numpy.matmul"}
    assert set(doc["process"]) == {"apply", "batch"}
    assert "samples differ from cv2.filter2D" in by_key["sharpen_u8_rgb"]["detail"]
    if plot.plot_available():
        plot.write_plot(doc, str(tmp_path / "targets.png"))
        assert (tmp_path / "targets.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_opencv_the_process_comparisons_say_so(monkeypatch):
    """And without vips: the comparisons that cannot run are named, with the reason."""
    monkeypatch.setattr(process, "have_cv2", lambda: False)
    found = process.measure_apply_vs(None, rounds=1, size=(24, 32), vips="")
    assert "error" not in found and "cv2" not in found and found["vs_cv2"] is None
    assert found["ok"] == {"clconv": True} and found["differ_cv2"] is None
    assert "OpenCV not installed" in goals.process_detail(found, "cv2")
    assert "vips" not in found and found["vs_vips"] is None
    assert "vips not on PATH" in found["left_out"]["vips"] and found["left_out"]["vips"] in found["notes"]
    assert "not on PATH" in goals.process_detail(found, "vips")  # the preset's detail line for apply_vs_vips
    assert process.measure_batch_vs(None, rounds=1, files=1) == {"skipped": process.NO_CV2}


def test_apply_against_vips_when_it_is_there(tmp_path, monkeypatch):
    """A vips that works; without OpenCV, whose one-liner is measured in the preset run above."""
    monkeypatch.setattr(process, "have_cv2", lambda: False)
    vips = write_script(tmp_path / "vips", FAKE_VIPS)
    found = process.measure_apply_vs(None, rounds=1, size=(32, 40), vips=str(vips))
    assert "error" not in found, found
    assert len(found["vips"]) == 1 and found["ok"]["vips"] and found["vs_vips"] > 0
    assert found["errors"]["vips"] == 0.0  # checked without abs, away from the edges


def test_the_preset_refuses_unknown_target_keys():
    with pytest.raises(ValueError, match="gauss15_f32"):
        goals.run_targets(bench.settings_from({"preset": "targets"}), lambda line: None, only={"gauss15_f32"})


def test_peak_memory_is_measured_in_a_subprocess():
    found = peak_memory.measure_peak_memory(None, "sharpen", size=(64, 48), channels=3)
    assert "error" not in found, found
    assert found["input"] == found["output"] == 64 * 48 * 3 * 4
    assert found["peak"] >= found["base"] > 0
    assert found["over_mib"] == pytest.approx((found["peak"] - 2 * found["input"]) / 2**20)


def test_apply_is_timed_as_the_installed_script(monkeypatch):
    real = process.gradient_png  # its input at 64x48, not 1 MP: the times are not the test's business
    monkeypatch.setattr(process, "gradient_png", lambda path: real(path, size=(48, 64)))
    found = process.measure_apply(None, warm_runs=1, cold_runs=0)
    assert "error" not in found, found
    assert found["warm_s"] > 0 and found["command"].split()[1:4] == ["apply", "-k", "sharpen"]
    assert found["cold_s"] is None


def test_bench_command_through_the_installed_script(run_clconv, tmp_path):
    report_path = tmp_path / "bench.json"
    result = run_clconv("bench", "--size", "48x40", "-k", "box", "-k", "3x1: 1,0,-1", "--dtype", "float32",
                        "--dtype", "uint8", "--channels", "3", "--algorithm", "direct", "--repeat", "1",
                        "--json", report_path)
    assert result.returncode == 0, result.stderr
    import json

    doc = json.loads(report_path.read_text())
    assert doc["clconv"] and doc["device"]
    rows = [r for r in doc["results"] if not r["reference"]]
    assert {r["algorithm"] for r in rows} == {"direct"}
    assert {r["dtype"] for r in rows} == {"float32", "uint8"}
    assert {r["size"] for r in rows} == {"48x40"}  # WxH, as given
    assert {r["kernel"] for r in rows} == {"box", "3x1: 1,0,-1"}
    for key in ("algorithm", "device", "size", "kernel", "dtype", "median_ms", "min_ms", "mpix_s", "gflop_s",
                "gb_s", "max_error", "reference"):
        assert all(key in r for r in doc["results"]), key
    bad = run_clconv("bench", "--size", "12y4")
    assert bad.returncode == 2 and bad.stderr.startswith("clconv: error: ")
