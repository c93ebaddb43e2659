"""clconv.bench: the quick sweep in-process on tiny images, its rows and JSON (SPEC "bench"), the
checks that flag wrong outputs, the interleaved ratios, the plot, and the targets as a table."""
from __future__ import annotations

import json
import statistics
import time

import numpy as np
import pytest

import clconv
from clconv import bench
from clconv.algorithms import REGISTRY
from clconv.errors import ClconvError, OptionError
from clconv.kernels import parse_spec

SPEC_ROW_KEYS = {"algorithm", "device", "size", "kernel", "dtype", "median_ms", "min_ms", "mpix_s", "gflop_s",
                 "gb_s", "max_error", "reference"}
TINY = {"quick": True, "sizes": [(24, 40), (33, 50)], "kernels": ["gaussian:size=3", "sharpen"],
        "dtypes": ["float32", "uint8"], "repeat": 2}


def has_cv2() -> bool:
    return bench._cv2() is not None


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One quick bench on tiny images, with --json (and --plot where matplotlib is installed)."""
    folder = tmp_path_factory.mktemp("bench")
    options = dict(TINY, json=str(folder / "bench.json"))
    if bench.plot_available():
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
    notes = tiny_run["doc"]["notes"]
    assert any("separable skipped for sharpen" in n for n in notes)


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
    monkeypatch.setattr(bench, "_cv2", lambda: None)
    doc = bench.run({"sizes": [(16, 16)], "kernels": ["box:size=3"], "dtypes": ["uint8"], "algorithm": "auto",
                     "repeat": 1}, lambda line: None)
    assert doc["ok"] and doc["host"]["references"] == [bench.host_description("scipy")]
    assert {r["algorithm"] for r in doc["results"] if r["reference"]} == {"scipy.ndimage.correlate"}


def test_quick_defaults_finish_within_a_minute():
    start = time.perf_counter()
    doc = bench.run({"quick": True}, lambda line: None)
    assert time.perf_counter() - start < 60
    assert doc["ok"]
    assert doc["settings"]["sizes"] == ["512x512", "1024x1024"] and doc["settings"]["repeat"] == 3
    assert {tuple(r["kernel_shape"]) for r in doc["results"]} == {(3, 3), (7, 7)}
    assert {r["dtype"] for r in doc["results"]} == {"float32", "uint8"}


# ---------------------------------------------------------------- wrong outputs are reported


def test_a_reference_with_a_wrong_output_is_flagged(monkeypatch, tmp_path):
    real = bench._scipy_reference

    def garbage(image, kernel, border):
        ref = real(image, kernel, border)
        return bench.Reference(ref.name, ref.device, lambda: np.full_like(image, 7))

    monkeypatch.setattr(bench, "_scipy_reference", garbage)
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

    good = bench.Candidate("good", "good", "host", lambda: np.zeros(3), lambda out: 0.0)
    bad = bench.Candidate("bad", "bad", "host", boom, lambda out: 0.0)
    results = bench.measure([good, bad], repeat=2, tol=1.0)
    assert results["bad"].error == "RuntimeError: device lost" and not results["bad"].timed
    assert len([s for s in results["good"].wall if s is not None]) == 2


# ---------------------------------------------------------------- rounds and ratios


def test_rounds_interleave_with_a_rotating_order():
    calls: list[str] = []
    candidates = [bench.Candidate(k, k, "host", (lambda k=k: calls.append(k) or np.zeros(1)), lambda out: 0.0)
                  for k in "abc"]
    bench.measure(candidates, repeat=3, tol=0.0)
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")


def test_speedups_are_medians_of_per_round_ratios():
    mine = bench.Candidate("direct@0:0", "direct", "dev", None, None, rt=object())
    ref = bench.Candidate("cv2.filter2D", "cv2.filter2D", "host", None, None)
    results = {
        mine.key: bench.Measured(first_s=1.0, max_error=0.0, timed=True, wall=[1.0, 2.0, 4.0], device=[0.5, 1.0, 2.0]),
        ref.key: bench.Measured(first_s=1.0, max_error=0.0, timed=True, wall=[3.0, 2.0, 2.0], device=[None] * 3),
    }
    work = {"size": "8x8", "kernel": "k", "dtype": "float32", "channels": 1, "border": "reflect", "pixels": 64,
            "flops": 2e9, "bytes": 1e9, "tolerance": 1.0, "kernel_shape": [3, 3]}
    rows = bench.make_rows([mine, ref], results, work, {"dev": 10.0, "host": 20.0})
    row = rows[0]
    assert row["speedup"]["cv2.filter2D"] == pytest.approx(statistics.median([3.0, 1.0, 0.5]))
    assert row["device_speedup"]["cv2.filter2D"] == pytest.approx(statistics.median([6.0, 2.0, 1.0]))
    assert row["median_ms"] == pytest.approx(2000.0) and row["min_ms"] == pytest.approx(1000.0)
    assert row["gflop_s"] == pytest.approx(1.0) and row["gb_s"] == pytest.approx(0.5)
    assert row["bw_pct"] == pytest.approx(5.0) and row["device_bw_pct"] == pytest.approx(10.0)
    assert rows[1]["reference"] and rows[1]["speedup"] == {} and rows[1]["bw_pct"] == pytest.approx(100 * 0.5 / 20)


# ---------------------------------------------------------------- oracle, tolerance, options


def test_oracle_applies_the_integer_mapping_and_tolerances():
    image = bench.make_image((9, 11), 1, "uint8", seed=4)
    got = bench.oracle(image, parse_spec("sobel-x"), "reflect")  # abs by default, then rounded and clipped
    assert got.min() >= 0 and got.max() <= 255 and np.array_equal(got, np.rint(got))
    assert bench.tolerance(image, np.ones((3, 3))) == 1.0
    floats = np.array([[0.0, 2.0], [1.0, 0.5]], np.float32)
    assert bench.tolerance(floats, np.full((3, 3), 0.5)) == pytest.approx(1e-4 * 2.0 * 4.5)
    assert bench.tolerance(floats, np.full((3, 3), 0.01)) == pytest.approx(1e-4 * 2.0)
    assert bench.max_error(np.zeros((2, 2)), np.ones((2, 3))) == float("inf")
    assert bench.max_error(np.array([[np.nan]]), np.zeros((1, 1))) == float("inf")


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


@pytest.mark.parametrize(
    "measured, expected",
    [
        ({"conv3x3_f32": 2.6, "sgemm": 0.69, "memory_direct": 80.0, "apply_warm": 0.4}, {
            "conv3x3_f32": True, "sgemm": False, "memory_direct": True, "apply_warm": True, "apply_cold": None}),
        ({"conv3x3_f32": 2.5, "memory_direct": 100.0, "apply_cold": 5.0, "sgemm": 0.7}, {
            "conv3x3_f32": True, "memory_direct": True, "apply_cold": True, "sgemm": True}),  # the goal itself is met
        ({"conv3x3_f32": 2.49, "memory_direct": 100.5, "apply_cold": 7.5, "dense31_f32": float("nan")}, {
            "conv3x3_f32": False, "memory_direct": False, "apply_cold": False, "dense31_f32": None}),
        ({}, {t.key: None for t in bench.TARGETS}),
    ],
)
def test_target_evaluation_as_a_table(measured, expected):
    evaluated = {e["key"]: e for e in bench.evaluate_targets(measured)}
    assert list(evaluated) == [t.key for t in bench.TARGETS]
    for key, met in expected.items():
        assert evaluated[key]["met"] is met, key
    lines = bench.format_targets(list(evaluated.values()))
    assert len(lines) == 1 + len(bench.TARGETS)
    assert all(line.endswith((" yes", " NO", " -")) for line in lines[1:])


def test_every_target_of_the_issue_is_listed():
    keys = {t.key for t in bench.TARGETS}
    assert {"conv3x3_f32", "sharpen_u8_rgb", "gauss15_f32", "dense31_f32", "bank8_3x3", "sgemm", "memory_direct",
            "apply_warm", "apply_cold"} <= keys
    memory = next(t for t in bench.TARGETS if t.key == "memory_direct")
    assert (memory.op, memory.threshold, memory.unit) == ("<=", 100.0, "MiB")


def test_peak_memory_is_measured_in_a_subprocess():
    found = bench.measure_peak_memory(None, "sharpen", size=(64, 48), channels=3)
    assert "error" not in found, found
    assert found["input"] == found["output"] == 64 * 48 * 3 * 4
    assert found["peak"] >= found["base"] > 0
    assert found["over_mib"] == pytest.approx((found["peak"] - 2 * found["input"]) / 2**20)


def test_apply_is_timed_as_the_installed_script():
    found = bench.measure_apply(None, warm_runs=1, cold_runs=0)
    assert "error" not in found, found
    assert found["warm_s"] > 0 and found["command"].split()[1:4] == ["apply", "-k", "sharpen"]


def test_bench_command_through_the_installed_script(run_clconv, tmp_path):
    report = tmp_path / "bench.json"
    result = run_clconv("bench", "--size", "48x40", "-k", "box", "-k", "3x1: 1,0,-1", "--dtype", "float32",
                        "--dtype", "uint8", "--channels", "3", "--algorithm", "direct", "--repeat", "1",
                        "--json", report)
    assert result.returncode == 0, result.stderr
    import json

    doc = json.loads(report.read_text())
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
