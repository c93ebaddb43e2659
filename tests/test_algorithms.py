"""The algorithm registry: the rules of `auto` as a table, algorithms against each other,
filter banks, bounded im2col bands, and the CLI's --each/--explain."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

import clconv
from clconv import algorithms
from clconv.algorithms import REGISTRY, choose_model, im2col
from clconv.errors import OptionError
from clconv.kernels import parse_spec
from clconv.params import band_rows

from test_low_rank import gaussian_1d, log_kernel

BORDERS = ("reflect", "mirror", "nearest", "wrap", "constant")
RNG = np.random.default_rng(2026)
RANK2 = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, 0.0, 1.0]])


G15 = gaussian_1d(2.5, 15)
LOG15 = log_kernel(2.0, 15)
DENSE7 = np.random.default_rng(7).standard_normal((7, 7))


def rank1(kh, kw, seed=0):
    rng = np.random.default_rng(seed)
    return np.outer(rng.standard_normal(kh), rng.standard_normal(kw))


# ---------------------------------------------------------------- auto, as a table
@pytest.mark.parametrize(
    "weights, device, bank, expected",
    [
        ("sobel-x", "cpu", 1, "direct"),          # rank 1 but 3x3: one pass wins
        ("sharpen", "cpu", 1, "direct"),          # rank above 1
        ("box:size=5", "cpu", 1, "separable"),    # rank 1, 25 taps -> 10
        ("gaussian:sigma=2", "cpu", 1, "separable"),
        (rank1(7, 3), "cpu", 1, "separable"),     # custom kernels are tested by SVD
        (rank1(1, 31), "cpu", 1, "direct"),       # already one pass
        (np.tile(RANK2, (3, 3)), "cpu", 1, "separable"),  # rank 3: 3 x (9 + 9) taps beat 81
        (RANK2, "cpu", 1, "direct"),               # rank 3 but 3x3: one pass
        (LOG15, "cpu", 1, "separable"),            # rank 2, 15x15: 2 x 30 taps, not 225
        (np.outer(G15, G15).astype(np.float32), "cpu", 1, "separable"),  # float32 Gaussian array
        (np.round(np.outer(G15, G15), 4), "cpu", 1, "fft"),  # rounded weights: full rank, dense
        (np.random.default_rng(1).standard_normal((7, 7)), "cpu", 1, "direct"),
        (np.random.default_rng(1).standard_normal((13, 13)), "cpu", 1, "fft"),  # 169 taps, rank > 1
        (np.random.default_rng(1).standard_normal((11, 15)), "cpu", 1, "direct"),  # 165 taps
        (np.random.default_rng(1).standard_normal((31, 31)), "cpu", 1, "fft"),
        ("gaussian:sigma=5", "cpu", 1, "separable"),  # rank 1 beats fft
        ("gaussian:sigma=2", "gpu", 16, "gemm"),  # a big bank on a GPU: one GEMM
        ("sobel-x", "gpu", 15, "direct"),
        ("sobel-x", "cpu", 64, "direct"),         # never GEMM on the CPU (PERF-NOTES)
    ],
)
def test_auto_rules(weights, device, bank, expected):
    kernel = parse_spec(weights)
    name, reason = choose_model(kernel, device_kind=device, bank_size=bank)
    assert name == expected, reason
    assert reason


class EverythingDirect:
    """A tuned table that answers every question with direct."""

    def choose(self, kernel, image_pixels):
        return "direct", {}, "tuned: direct everywhere"


@pytest.mark.parametrize("weights, expected", [("sharpen", "direct"), ("gaussian:sigma=2", "separable"),
                                               (np.random.default_rng(1).standard_normal((31, 31)), "fft")])
def test_below_64x64_the_model_decides_not_the_tuned_table(weights, expected):
    """The tuned table starts at 512x512: a 10x10 image is the model's, whose taps now decide
    there too (one pass is no longer cheapest: a launch costs microseconds, README "Launch cost")."""
    kernel = parse_spec(weights)
    step = algorithms.choose("auto", kernel, image_pixels=100, device_kind="cpu", table=EverythingDirect())
    assert (step.algorithm.name, step.source) == (expected, "model"), step.reason
    big = algorithms.choose("auto", kernel, image_pixels=64 * 64, device_kind="cpu", table=EverythingDirect())
    assert (big.algorithm.name, big.source) == ("direct", "tuned"), big.reason


def test_every_algorithm_is_a_choice_and_explicit_refusals_are_option_errors():
    assert set(algorithms.CHOICES) == {"auto", *REGISTRY}
    with pytest.raises(OptionError, match="not separable"):
        clconv.convolve(np.zeros((8, 8), np.float32), DENSE7, algorithm="separable")
    with pytest.raises(OptionError, match="unknown algorithm"):
        clconv.convolve(np.zeros((8, 8), np.float32), "box", algorithm="fft-someday")


def test_rank1_detection_by_svd():
    assert parse_spec("1 2 1; 2 4 2; 1 2 1").separable_factors() is not None
    assert parse_spec(RANK2).separable_factors() is None
    assert parse_spec(RANK2).rank == 3
    assert parse_spec("sharpen").separable_factors() is None
    col, row = parse_spec(rank1(5, 4, seed=3)).separable_factors()
    np.testing.assert_allclose(np.outer(col, row), rank1(5, 4, seed=3), atol=1e-12)


# ---------------------------------------------------------------- algorithms against each other
@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), kh=st.integers(1, 9), kw=st.integers(1, 9),
       border=st.sampled_from(BORDERS), flip=st.booleans(), stride=st.integers(1, 3), dilation=st.integers(1, 3),
       padding=st.sampled_from([None, None, 0, 2]), seed=st.integers(0, 2**31))
def test_algorithms_agree(h, w, kh, kw, border, flip, stride, dilation, padding, seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((h, w, 2)).astype(np.float32)
    weights = rank1(kh, kw, seed)  # every algorithm accepts rank 1
    options = dict(border=border, border_value=0.5, flip=flip, stride=stride, dilation=dilation, padding=padding)
    try:
        results = {name: clconv.convolve(image, weights, algorithm=name, **options) for name in REGISTRY}
    except OptionError:  # output would be empty for this geometry: every algorithm agrees on that too
        return
    reference = results["direct"]
    scale = np.abs(weights).sum() * max(1.0, float(np.abs(image).max()))
    for name, out in results.items():
        assert out.shape == reference.shape, name
        np.testing.assert_allclose(out, reference, atol=2e-5 * scale, err_msg=name)


# ---------------------------------------------------------------- filter banks
@settings(max_examples=300, deadline=None)
@given(h=st.integers(1, 60), row_len=st.integers(1, 150), kh=st.integers(1, 9), span=st.integers(1, 40),
       dilation=st.integers(1, 3), off_y=st.integers(-2, 12), off_x=st.integers(-2, 40),
       shrink=st.tuples(st.integers(0, 8), st.integers(0, 20)), values=st.sampled_from([16, 32]))
def test_interior_tiles_stay_inside(h, row_len, kh, span, dilation, off_y, off_x, shrink, values):
    """The fast kernel's tiles, placed as cl/direct.cl places them, read only inside the input,
    stay inside the output and cover the whole interior; the interior is None only when no
    tile fits (checked by brute force over positions)."""
    from clconv.algorithms.direct import VEC_ROWS, split_interior

    out_h, out_len = max(0, h - shrink[0]), max(0, row_len - shrink[1])
    rows = VEC_ROWS
    interior = split_interior((h, row_len), (out_h, out_len), (kh, span), dilation, (off_y, off_x), (rows, values))
    fits_y = [y for y in range(out_h) if y - off_y >= 0 and y - off_y + (kh - 1) * dilation < h]
    fits_x = [x for x in range(out_len) if x - off_x >= 0 and x - off_x + (span - 1) * dilation < row_len]
    if interior is None:
        assert len(fits_y) < rows or len(fits_x) < values
        return
    xa, ya, xb, yb = interior
    assert (list(range(ya, yb)), list(range(xa, xb))) == (fits_y, fits_x)
    by_tiles = np.zeros((out_h, out_len), bool)
    for ty in range(-(-(yb - ya) // rows)):
        for tx in range(-(-(xb - xa) // values)):
            y, x = min(ya + ty * rows, yb - rows), min(xa + tx * values, xb - values)
            assert ya <= y and y + rows <= yb and xa <= x and x + values <= xb
            by_tiles[y:y + rows, x:x + values] = True
    assert by_tiles[ya:yb, xa:xb].all()


@pytest.mark.parametrize("algorithm", ["auto", *REGISTRY])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_bank_equals_separate_calls(algorithm, dtype):
    image = (RNG.random((37, 51, 3)) * 255).astype(dtype)
    bank = ["sobel-x", "sobel-y", "box", "emboss", "1 2 1; 2 4 2; 1 2 1"]
    if algorithm == "separable":
        bank = ["sobel-x", "sobel-y", "box", "1 2 1; 2 4 2; 1 2 1"]
    outs = clconv.convolve_bank(image, bank, algorithm=algorithm, border="mirror")
    assert len(outs) == len(bank)
    for spec, out in zip(bank, outs):
        alone = clconv.convolve(image, spec, algorithm="direct", border="mirror")
        assert out.dtype == alone.dtype and out.shape == alone.shape
        tolerance = 1 if dtype == np.uint8 else 1e-3
        assert np.abs(out.astype(np.float64) - alone).max() <= tolerance, spec


def test_bank_matches_the_oracle_and_handles_mixed_shapes_and_alpha():
    image = RNG.random((40, 33), dtype=np.float32) * 100
    bank = ["box:size=5", "sobel-x", RANK2, "gaussian:sigma=1.5"]
    outs = clconv.convolve_bank(image, bank, border="wrap")
    for spec, out in zip(bank, outs):
        ref = ndi.correlate(image.astype(np.float64), parse_spec(spec).weights, mode="wrap")
        np.testing.assert_allclose(out, ref, atol=1e-3)
    rgba = (RNG.random((20, 24, 4)) * 255).astype(np.uint8)
    for out, spec in zip(clconv.convolve_bank(rgba, ["box", "sobel-x"], alpha="keep"), ["box", "sobel-x"]):
        np.testing.assert_array_equal(out, clconv.convolve(rgba, spec, alpha="keep"))


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 90), channels=st.sampled_from([1, 2, 3]),
       kh=st.integers(1, 6), kw=st.integers(1, 6), count=st.integers(2, 19),
       border=st.sampled_from(BORDERS), flip=st.booleans(), dilation=st.integers(1, 2),
       padding=st.sampled_from([None, 0, 1, 3]), seed=st.integers(0, 2**16))
def test_fused_bank_matches_the_oracle(h, w, channels, kh, kw, count, border, flip, dilation, padding, seed):
    """float32 banks of same-shaped kernels run fused (cl/bank.cl, BANK kernels per pass)."""
    from oracle import assert_matches, reference

    from clconv import engine
    from clconv.api import build_plan
    from clconv.runtime import get_runtime

    rng = np.random.default_rng(seed)
    image = rng.uniform(-1.5, 3.5, (h, w, channels)).astype(np.float32)
    bank = [rng.standard_normal((kh, kw)) for _ in range(count)]
    options = dict(border=border, flip=flip, dilation=dilation, padding=padding, border_value=0.5 * (border == "constant"))
    if padding is not None and (h + 2 * padding < (kh - 1) * dilation + 1 or w + 2 * padding < (kw - 1) * dilation + 1):
        return  # no output pixel: refused, as for convolve
    plan = build_plan(bank, in_dtype=np.float32, channels=channels, algorithm="direct", **options)
    singles = [engine.replace(plan, kernels=(k,)) for k in plan.kernels]
    rt = get_runtime()
    assert engine._fusable(rt, image, plan, singles, engine.schedule_for(rt, plan, image.shape[:2], bank=True))
    outs = clconv.convolve_bank(image, bank, algorithm="direct", **options)
    for index, (weights, out) in enumerate(zip(bank, outs)):
        assert_matches(out, reference(image, weights, **options), f"kernel {index} of {count}")


def test_plan_options_are_given_once():
    """build_plan takes its filter options as one PlanOptions (or by name, replacing its fields);
    convolve and convolve_bank pass theirs on, and refuse a name that is not an option."""
    from dataclasses import replace

    from clconv.api import PlanOptions, build_plan

    options = PlanOptions(border="wrap", border_value=0.0, flip=True, padding=1, stride=2, dilation=2,
                          alpha="keep", abs=True, scale=0.5, bias=3.0, algorithm="direct")
    by_object = build_plan(["sobel-x"], options, in_dtype=np.uint8, channels=2)
    by_name = build_plan(["sobel-x"], in_dtype=np.uint8, channels=2, **vars(options))
    assert replace(by_object, kernels=()) == replace(by_name, kernels=())  # kernels compare by identity
    assert by_object.border == "wrap" and by_object.geometry.stride == 2 and by_object.mapping.scale == 0.5
    assert build_plan(["box"], options, in_dtype=np.uint8, channels=2, stride=1).geometry.stride == 1
    image = RNG.random((9, 11), dtype=np.float32)
    for call in (clconv.convolve, clconv.convolve_bank):
        with pytest.raises(TypeError, match="strides"):
            call(image, ["box"], strides=2)


def test_sobel_magnitude_runs_gx_gy_as_a_bank_through_gemm():
    image = RNG.random((45, 38), dtype=np.float32) * 255
    gx = ndi.correlate(image.astype(np.float64), parse_spec("sobel-x").weights, mode="reflect")
    gy = ndi.correlate(image.astype(np.float64), parse_spec("sobel-y").weights, mode="reflect")
    for algorithm in ("gemm", "direct", "auto"):
        out = clconv.convolve(image, "sobel", algorithm=algorithm)
        np.testing.assert_allclose(out, np.hypot(gx, gy), atol=2e-3)


def test_im2col_bands_are_bounded_and_give_the_same_result(monkeypatch):
    image = RNG.random((67, 45, 2), dtype=np.float32)
    whole = clconv.convolve_bank(image, ["sobel-x", "box:size=5", RANK2], algorithm="gemm")
    monkeypatch.setattr(im2col, "BAND_BYTES", 9 * 45 * 4 * 3 + 5)  # about 3 rows of 9 taps per band
    assert band_rows(im2col.BAND_BYTES, 9 * 45 * 4, most=67) == 3  # as correlate_bank asks for 3x3 kernels
    banded = clconv.convolve_bank(image, ["sobel-x", "box:size=5", RANK2], algorithm="gemm")
    for a, b in zip(whole, banded):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(clconv.convolve(image, "box:size=7", algorithm="gemm"),
                               clconv.convolve(image, "box:size=7", algorithm="direct"), atol=1e-5)


# ---------------------------------------------------------------- CLI
def test_each_writes_one_output_per_kernel(run_clconv, tmp_path):
    from PIL import Image

    pixels = (RNG.random((70, 81, 3)) * 255).astype(np.uint8)  # above auto's tiny-image size
    src = tmp_path / "in.png"
    Image.fromarray(pixels).save(src)
    result = run_clconv("apply", "-k", "sobel-x", "-k", "sobel-y", "-k", "gaussian:sigma=2", "--each",
                        "--explain", src, tmp_path / "out-{kernel}.png")
    assert result.returncode == 0, result.stderr
    explained = [line for line in result.stderr.splitlines() if line.startswith("clconv: explain: ")]
    assert len(explained) == 4 and "schedule for 81x70" in explained[0] and "model" in explained[0]
    assert "memory" in explained[0]  # the memory strategy (zero-copy or copies)
    assert "separable" in explained[3]
    for spec, name in [("sobel-x", "sobel-x"), ("sobel-y", "sobel-y"), ("gaussian:sigma=2", "gaussian-sigma2")]:
        with Image.open(tmp_path / f"out-{name}.png") as image:
            got = np.asarray(image)
        assert np.array_equal(got, clconv.convolve(pixels, spec)), spec
    missing = run_clconv("apply", "-k", "sobel-x", "-k", "sobel-y", "--each", src, tmp_path / "plain.png")
    assert missing.returncode == 2 and "{kernel}" in missing.stderr
    assert not (tmp_path / "plain.png").exists()


def test_matrix_command_prints_and_saves(run_clconv, tmp_path):
    import scipy.sparse

    shown = run_clconv("matrix", "-k", "sobel-x", "--shape", "3x3")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines() if line and not line.startswith("#")]
    assert len(rows) == 9 and all(len(r) == 9 for r in rows)
    image = np.arange(9, dtype=np.float32).reshape(3, 3) ** 2
    m = np.array(rows, dtype=float)
    np.testing.assert_allclose(m @ image.ravel(), clconv.convolve(image, "sobel-x").ravel(), atol=1e-3)
    saved = tmp_path / "m.npz"
    result = run_clconv("matrix", "-k", "gaussian:sigma=1", "--shape", "20x30", "--border", "wrap", "-o", saved)
    assert result.returncode == 0, result.stderr
    big = scipy.sparse.load_npz(saved)
    x = RNG.random((20, 30), dtype=np.float32)
    np.testing.assert_allclose(big @ x.ravel(), clconv.convolve(x, "gaussian:sigma=1", border="wrap").ravel(),
                               atol=1e-5)
    again = run_clconv("matrix", "-k", "box", "--shape", "4x4", "-o", saved)
    assert again.returncode == 2 and "exists" in again.stderr
    too_big = run_clconv("matrix", "-k", "box", "--shape", "300x300")
    assert too_big.returncode == 2 and len(too_big.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("border", BORDERS)
def test_separable_bands_give_the_same_result(monkeypatch, border):
    from clconv.algorithms import separable

    rng = np.random.default_rng(9)
    images = [rng.random((53, 37, 3), dtype=np.float32) * 9, (rng.random((41, 29, 3)) * 255).astype(np.uint8),
              rng.random((47, 31), dtype=np.float32)]
    kernels = ["gaussian:sigma=1.5", rank1(7, 5, seed=4), rank1(4, 6, seed=5), rank1(5, 6, seed=6) - rank1(5, 6, 7)]
    assert parse_spec(kernels[-1]).rank == 2  # two terms, each row pass into its own intermediate
    options = [{}, {"dilation": 2}, {"padding": 4}, {"flip": True}]
    whole = {}
    for i, image in enumerate(images):
        for j, kernel in enumerate(kernels):
            for k, extra in enumerate(options):
                whole[i, j, k] = clconv.convolve(image, kernel, border=border, algorithm="separable", border_value=2.5, **extra)
    # the smallest band: SEP_ROWS output rows (band_bytes is correlate's default)
    monkeypatch.setattr(separable.correlate, "__defaults__", (None, 1, separable.SEP_ROWS))
    assert band_rows(1, 4 * 37 * 3, span=13, unit=separable.SEP_ROWS, most=53) == separable.SEP_ROWS
    for i, image in enumerate(images):
        for j, kernel in enumerate(kernels):
            for k, extra in enumerate(options):
                banded = clconv.convolve(image, kernel, border=border, algorithm="separable", border_value=2.5, **extra)
                direct = clconv.convolve(image, kernel, border=border, algorithm="direct", border_value=2.5, **extra)
                np.testing.assert_array_equal(banded, whole[i, j, k])
                tolerance = 1 if image.dtype == np.uint8 else 1e-3
                assert np.abs(banded.astype(np.float64) - direct).max() <= tolerance, (i, j, extra)
