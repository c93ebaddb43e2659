"""clconv tune and the per-device cache: real measurements on the real device, into a temporary
cache folder; what auto does with them; a corrupt, foreign or half-written cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import clconv
from clconv import algorithms, tuning
from clconv.api import build_plan
from clconv.kernels import Linear

from oracle import assert_matches, make_image, reference

# PoCL's kernel cache as PoCL finds it, read at import: the `tuned` fixture points XDG_CACHE_HOME
# at a temporary folder for the rest of the module, and processes started meanwhile would find a
# cold cache there (every program compiled again: the two tunes below took 9.4 s instead of 2.4).
POCL_CACHE_DIR = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                              "pocl", "kcache")

SIZES = ((96, 96), (256, 256))
SIDES = (3, 5, 9, 15)


@pytest.fixture(scope="module")
def tuned(runtime, tmp_path_factory):
    """One real (small) tune of the test device, in a private cache folder."""
    folder = tmp_path_factory.mktemp("xdg")
    old = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "CLCONV_TUNING")}
    os.environ["XDG_CACHE_HOME"], os.environ["CLCONV_TUNING"] = str(folder), "1"
    tuning.forget()
    try:
        rows = tuning.measure(runtime, SIZES, SIDES, repeat=2)
        doc = {"schema": tuning.SCHEMA, "device": tuning.device_key(runtime), "measurements": rows}
        path = tuning.cache_path(runtime)
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            json.dump(doc, f)
        yield runtime, path, doc
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        tuning.forget()


@pytest.fixture
def with_cache(tuned, monkeypatch):
    runtime, path, doc = tuned
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.dirname(os.path.dirname(os.path.dirname(path))))
    monkeypatch.setenv("CLCONV_TUNING", "1")
    tuning.forget()
    yield tuned
    tuning.forget()


def _measured(doc, size, side, rank, algorithm, params) -> float:
    for r in doc["measurements"]:
        if (tuple(r["size"]), r["side"], r["algorithm"], r["params"]) == (tuple(size), side, algorithm, params):
            if algorithm != "separable" or r["rank"] == rank:
                return r["ms"]
    raise KeyError((size, side, rank, algorithm, params))


def test_the_cache_covers_the_grid_and_is_found(with_cache):
    runtime, path, doc = with_cache
    table = tuning.table_for(runtime)
    assert table is not None and table.path == path
    assert table.sizes == sorted(SIZES) and table.sides == sorted(SIDES)
    variants = sum(len(a.variants) for a in algorithms.REGISTRY.values() if a.name in ("direct", "fft"))
    separable = len(algorithms.REGISTRY["separable"].variants) * len(tuning.SEPARABLE_RANKS)
    assert len(doc["measurements"]) == len(SIZES) * len(SIDES) * (variants + separable)


def test_auto_never_picks_a_measured_choice_more_than_1_2x_slower_than_the_best(with_cache):
    runtime, _, doc = with_cache
    table = tuning.table_for(runtime)
    checked = 0
    for size in SIZES:
        for side in SIDES:
            for rank, kernel in tuning.grid_kernels(side).items():
                if kernel.rank not in (None, *tuning.SEPARABLE_RANKS):
                    continue  # a small "dense" kernel has rank 3 or 4: separable not measured at that rank
                step = algorithms.choose("auto", kernel, image_pixels=size[0] * size[1], device_kind="cpu",
                                         table=table)
                assert step.source == "tuned", step.reason
                can_separate = kernel.rank is not None
                options = [_measured(doc, size, side, kernel.rank, a.name, dict(p))
                           for a in algorithms.REGISTRY.values() if a.name != "gemm"
                           if a.name != "separable" or can_separate for p in a.variants]
                chosen = _measured(doc, size, side, kernel.rank, step.algorithm.name, step.params)
                assert chosen <= 1.2 * min(options), (size, side, rank, step.reason)
                checked += 1
    assert checked >= len(SIZES) * (len(SIDES) * 3 - 2)


def test_tuned_and_model_choices_give_the_same_pixels(with_cache, monkeypatch):
    runtime = with_cache[0]
    g = np.exp(-np.linspace(-2, 2, 15) ** 2)
    kernels = [np.outer(g, g).astype(np.float32), np.random.default_rng(3).standard_normal((9, 9)),
               "sharpen", "box:size=5", np.outer(g, g) - np.outer(g[::-1] ** 2, g ** 0.5)]
    differ = 0
    for weights in kernels:
        for image in (make_image((256, 256), "float32", 1), make_image((200, 230, 3), "uint8", 2)):
            plan = build_plan([weights], in_dtype=image.dtype)
            shape = image.shape[:2]
            tuned_step = algorithms.schedule(plan, shape, runtime.info, table=tuning.table_for(runtime)).steps[0]
            model_step = algorithms.schedule(plan, shape, runtime.info).steps[0]
            differ += (tuned_step.algorithm, tuned_step.params) != (model_step.algorithm, model_step.params)
            with_tuning = clconv.convolve(image, weights)
            monkeypatch.setenv("CLCONV_TUNING", "0")
            without = clconv.convolve(image, weights)
            monkeypatch.setenv("CLCONV_TUNING", "1")
            ref = reference(image, weights, "reflect")
            assert_matches(with_tuning, ref, f"tuned {tuned_step.reason}")
            assert_matches(without, ref, f"model {model_step.reason}")
            if image.dtype == np.uint8:
                assert np.abs(with_tuning.astype(int) - without).max() <= 1
            else:
                np.testing.assert_allclose(with_tuning, without, atol=ref.tol.max())
    assert differ >= 0  # how many choices differ depends on the device; the pixels never do


def test_interpolation_between_measured_sides_and_sizes():
    rows = []
    for size in ((100, 100), (400, 400)):
        scale = size[0] * size[0] / 10000
        for side, direct_ms, fft_ms in ((3, 1.0, 10.0), (15, 25.0, 10.0)):
            rows.append({"size": list(size), "side": side, "rank": None, "algorithm": "direct", "params": {},
                         "ms": direct_ms * scale})
            rows.append({"size": list(size), "side": side, "rank": None, "algorithm": "fft", "params": {},
                         "ms": fft_ms * scale})
    table = tuning.Table("memory", {"measurements": rows})
    dense = lambda k: Linear("dense", np.random.default_rng(k).standard_normal((k, k)))  # noqa: E731
    assert table.choose(dense(3), 100 * 100)[0] == "direct"
    assert table.choose(dense(15), 100 * 100)[0] == "fft"
    est = table.estimates(dense(7), 100 * 100)
    # log-log between (3, 1 ms) and (15, 25 ms): 7 -> 25 ** (log(7/3) / log(5)) ms
    assert est[("direct", "{}")] == pytest.approx(25 ** (np.log(7 / 3) / np.log(5)))
    assert table.estimates(dense(31), 100 * 100) is None  # beyond the grid: the model decides
    assert table.estimates(Linear("row", np.ones((1, 9))), 100 * 100) is None
    # the nearest measured size in log scale (400² for 250²), scaled by the pixel count
    assert table.estimates(dense(3), 250 * 250)[("direct", "{}")] == pytest.approx(16.0 * 250**2 / 400**2)


@pytest.mark.parametrize("content, why", [
    ("{not json", "cannot read it"),
    ("\xff\xfe", "cannot read it"),
    (json.dumps({"schema": 99}), "not a clconv tuning file"),
    (json.dumps([1, 2]), "not a clconv tuning file"),
])
def test_a_corrupt_cache_is_ignored_with_one_warning(runtime, tmp_path, monkeypatch, capsys, content, why):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CLCONV_TUNING", "1")
    tuning.forget()
    path = tuning.cache_path(runtime)
    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="latin-1") as f:
        f.write(content)
    image = make_image((80, 80), "float32", 5)
    for _ in range(3):
        out = clconv.convolve(image, "gaussian:sigma=2")
    tuning.forget()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"clconv: warning: {path}: tuning cache ignored") and why in err[0]
    assert_matches(out, reference(image, "gaussian:sigma=2", "reflect"))


def test_a_foreign_cache_is_ignored_with_one_warning(with_cache, capsys):
    runtime, path, doc = with_cache
    foreign = dict(doc, device=dict(doc["device"], driver="some other driver"))
    with open(path) as f:
        saved = f.read()
    try:
        with open(path, "w") as f:
            json.dump(foreign, f)
        tuning.forget()
        assert tuning.table_for(runtime) is None
        assert tuning.table_for(runtime) is None  # read once per process: one warning
        err = capsys.readouterr().err.splitlines()
        assert err == [f"clconv: warning: {path}: tuning cache ignored: measured on another device, driver or "
                       "clconv version; run clconv tune again"]
        bad = dict(doc, measurements=[dict(doc["measurements"][0], ms=-1)])
        with open(path, "w") as f:
            json.dump(bad, f)
        tuning.forget()
        assert tuning.table_for(runtime) is None and "malformed" in capsys.readouterr().err
    finally:
        with open(path, "w") as f:
            f.write(saved)
        tuning.forget()


def _pocl_cache_env(tmp_path) -> dict:
    """A private XDG_CACHE_HOME for clconv, with PoCL's kernel cache left where it is (warm)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"), CLCONV_TUNING="1")
    env.setdefault("POCL_CACHE_DIR", POCL_CACHE_DIR)
    env.pop("PYTHONWARNINGS", None)
    return env


# `clconv tune --quick` on a smaller grid: the command, its measurements and its atomic write as
# they are, in a fresh process, on one image size and the two sides around gaussian:sigma=2's 17
# (what the explain below asks for). The full quick grid takes 12 s for two processes on 2 cores;
# what is checked here (the write, the cache read back) does not depend on the grid's size.
_SMALL_TUNE = ("import sys\n"
               "from clconv import cli, tuning\n"
               "assert hasattr(tuning, 'QUICK_SIZES') and hasattr(tuning, 'SIDES'), 'the grid was renamed'\n"
               "tuning.QUICK_SIZES, tuning.SIDES = ((128, 128),), (15, 21)\n"
               "sys.exit(cli.main(['tune', '--quick', '--repeat', '1']))\n")


@pytest.mark.slow
def test_two_processes_tuning_at_once_leave_a_valid_cache_and_explain_uses_it(clconv_script, tmp_path):
    env = _pocl_cache_env(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", _SMALL_TUNE], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folder = tmp_path / "xdg" / "clconv" / "tuning"
    files = sorted(os.listdir(folder))
    assert len(files) == 1 and files[0].endswith(".json"), files  # no temporaries left
    doc = json.loads((folder / files[0]).read_text())
    assert tuning._valid(doc, doc["device"]) is None
    assert {tuple(r["size"]) for r in doc["measurements"]} == {(128, 128)}
    assert {r["side"] for r in doc["measurements"]} == {15, 21}

    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(make_image((300, 300, 3), "uint8", 7)).save(src)
    result = subprocess.run([clconv_script, "apply", "-k", "gaussian:sigma=2", "--explain", str(src),
                             str(tmp_path / "out.png")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "from the tuned measurements of this device" in result.stderr
    assert str(folder / files[0]) in result.stderr
    off = subprocess.run([clconv_script, "apply", "-k", "gaussian:sigma=2", "--explain", "--force", str(src),
                          str(tmp_path / "out.png")], env=dict(env, CLCONV_TUNING="0"), capture_output=True,
                         text=True)
    assert off.returncode == 0 and "from the built-in model" in off.stderr
