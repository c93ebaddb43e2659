"""Start-up of `clconv apply`: what is imported, the device cache, the device thread, the fast PNG
writer. Real PoCL device, the installed console script (or its main() in a fresh process), and a
temporary XDG_CACHE_HOME in every test (PoCL keeps its own kernel cache where it was).

A first run and a second run with the cache it wrote (``cache_runs``, once for the module) serve
several tests: the first run's imports, the cache it writes, the second run's use of it and its
device thread. Tests that need a cache to start from write the first run's into their own folder."""
from __future__ import annotations

import copy
import io
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from clconv import imageio, runtime
from clconv.errors import OutputError
from clconv.runtime import device_cache

pytestmark = pytest.mark.xdist_group("fast_start")  # one pytest-xdist worker: the module fixtures run once

# Runs clconv's console entry point (main() with no arguments, as the script does) in a fresh
# process, and on the way out (os._exit: apply ends without the OpenCL teardown) reports what
# the process holds: which platforms it listed, whether the device cache chose the ICD, and the
# OpenCL drivers mapped into it.
PROBE = r"""
import json, os, sys
from clconv import cli, runtime
real_exit = os._exit
def report(code):
    found = runtime._platform_devices.cache_info().currsize and runtime._platform_devices()
    libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if "pocl" in l and ".so" in l and "kcache" not in l})
    rt = runtime._usable_runtime.cache_info().currsize and runtime.get_runtime(None)
    print("PROBE " + json.dumps({"platforms": sorted({i.platform_index for i, _ in found or ()}),
                                 "programs": sorted(rt._programs) if rt else [],
                                 "cached": runtime._cache.entry is not None, "libs": libs,
                                 "ocl_icd_vendors": os.environ.get("OCL_ICD_VENDORS")}), file=sys.stderr, flush=True)
    real_exit(code)
os._exit = report
sys.argv = ["clconv"] + sys.argv[1:]
cli.main()
"""


ENV_LEFT_OUT = ("PYTHONWARNINGS", "CLCONV_DEVICE", "PYOPENCL_CTX", "CLCONV_DEVICE_CACHE", "PYOPENCL_HOME",
                runtime._RETRY_ENV)  # as in a shell (pyopencl sets PYOPENCL_HOME in this process)


def make_env(folder: Path) -> dict:
    """The user's environment with an empty XDG_CACHE_HOME in ``folder``; PoCL's kernel cache stays
    where it is (else every program would compile again, seconds each)."""
    e = dict(os.environ)
    for name in ENV_LEFT_OUT:
        e.pop(name, None)
    xdg = e.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    e.setdefault("POCL_CACHE_DIR", os.path.join(xdg, "pocl", "kcache"))
    e["XDG_CACHE_HOME"] = str(folder / "xdg")
    return e


@pytest.fixture()
def env(tmp_path):
    return make_env(tmp_path)


def write_png(path: Path) -> Path:
    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture()
def png(tmp_path) -> Path:
    return write_png(tmp_path / "in.png")


def cache_file(env) -> Path:
    return Path(env["XDG_CACHE_HOME"]) / "clconv" / "device.json"


def run(args, env, cwd, script=None, importtime=False):
    """The installed script (or the PROBE, when ``script`` is "probe", under python -X importtime
    when ``importtime``)."""
    if script == "probe":
        command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", PROBE, *map(str, args)]
    else:
        command = [str(Path(sys.executable).with_name("clconv")), *map(str, args)]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def import_names(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def probe(args, env, cwd, importtime=False):
    """(result, what the PROBE reported, the other stderr lines: python -X importtime's left out)."""
    result = run(args, env, cwd, script="probe", importtime=importtime)
    lines = [line for line in result.stderr.splitlines() if line.startswith("PROBE ")]
    other = [line for line in result.stderr.splitlines() if not line.startswith(("PROBE ", "import time:"))]
    assert len(lines) == 1, result.stderr[-4000:]
    return result, json.loads(lines[0][6:]), other


def imported(args, env, cwd) -> tuple[subprocess.CompletedProcess, set[str]]:
    """The modules the installed script imports for ``args`` (python -X importtime)."""
    script = str(Path(sys.executable).with_name("clconv"))
    result = subprocess.run([sys.executable, "-X", "importtime", script, *map(str, args)], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    return result, import_names(result.stderr)


@pytest.fixture(scope="module")
def cache_runs(tmp_path_factory):
    """``clconv apply -k sobel-x`` twice in one folder, as the PROBE: first with an empty
    XDG_CACHE_HOME under python -X importtime (what start-up imports; the cache it writes), then
    with the cache it wrote (which it uses; the first run has put every program in PoCL's
    kernel cache, so the second one's device thread builds them all)."""
    folder = tmp_path_factory.mktemp("cache-runs")
    env, png = make_env(folder), write_png(folder / "in.png")
    first, seen, first_other = probe(["apply", "-k", "sobel-x", png, folder / "a.png"], env, folder, importtime=True)
    doc = json.loads(cache_file(env).read_text()) if cache_file(env).exists() else None
    second, cached, second_other = probe(["apply", "-k", "sobel-x", png, folder / "b.png"], env, folder)
    doc_after = json.loads(cache_file(env).read_text()) if cache_file(env).exists() else None

    def pixels(name):
        return np.asarray(Image.open(folder / name)) if (folder / name).exists() else None

    return SimpleNamespace(env=env, png=png, first=first, seen=seen, first_other=first_other,
                           names=import_names(first.stderr), doc=doc, a=pixels("a.png"), second=second,
                           cached=cached, second_other=second_other, doc_after=doc_after, b=pixels("b.png"))


def write_cache(env, doc) -> Path:
    path = cache_file(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


# ---------------------------------------------------------------------------------------- imports


@pytest.mark.parametrize("args", [["--help"], ["kernels"], ["kernels", "gaussian:sigma=2"], ["apply", "--help"]])
def test_help_and_kernels_do_not_touch_opencl(args, env, tmp_path):
    result, names = imported(args, env, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pyopencl" not in names and "clconv.runtime" not in names
    if args == ["--help"]:
        assert "numpy" not in names and "PIL" not in names  # the group's help needs click alone
    assert not (tmp_path / "xdg" / "clconv").exists()


def test_apply_imports_what_it_needs_and_nothing_else(cache_runs):
    """The first run of cache_runs: main() in a fresh process, under python -X importtime."""
    result, names = cache_runs.first, cache_runs.names
    assert result.returncode == 0, result.stderr[-2000:]
    assert {"numpy", "PIL.Image", "pyopencl", "click"} <= names
    for heavy in ("scipy", "matplotlib", "hypothesis", "cv2", "dask", "zarr", "fsspec", "pandas"):
        assert not any(n == heavy or n.startswith(heavy + ".") for n in names), heavy


# ---------------------------------------------------------------------------------------- device cache


def test_the_device_cache_remembers_the_icd_and_loads_only_it(cache_runs):
    first, seen, env = cache_runs.first, cache_runs.seen, cache_runs.env
    assert first.returncode == 0 and cache_runs.first_other == [], first.stderr[-4000:]
    assert not seen["cached"]
    doc = cache_runs.doc
    (entry,) = doc["entries"]
    assert entry["restrict"] and os.path.exists(entry["library"]) and entry["key"]["clconv"]

    second, cached = cache_runs.second, cache_runs.cached
    assert second.returncode == 0 and cache_runs.second_other == [], second.stderr
    assert cached["cached"]
    assert cached["platforms"] == [entry["platform_index"]]
    assert os.path.realpath(entry["library"]) in {os.path.realpath(p) for p in cached["libs"]}
    assert len(cached["libs"]) <= len(seen["libs"])
    if len(seen["platforms"]) > 1:  # several ICDs: the others are not even loaded
        assert len(cached["libs"]) < len(seen["libs"])
    assert cached["ocl_icd_vendors"] == env.get("OCL_ICD_VENDORS")  # given back once the loader read it
    assert np.array_equal(cache_runs.a, cache_runs.b)
    assert cache_runs.doc_after == doc  # nothing to write the second time


def test_the_device_thread_builds_the_probe_and_the_likely_next_program(cache_runs):
    """The second run of cache_runs (after the first, PoCL's kernel cache holds every program)."""
    result, seen = cache_runs.second, cache_runs.cached
    assert result.returncode == 0 and cache_runs.second_other == [], result.stderr
    assert {runtime.PROBE_PROGRAM, *runtime.SPECULATIVE_PROGRAMS} <= set(seen["programs"])


GARBAGE = (b"{not json", b"\xff\xfe\x00", b'{"schema": 1, "entries": [{"key": 3}]}', b"[]")


def test_a_corrupt_cache_warns_once_and_is_rewritten(env, png, tmp_path, cache_runs, capsys):
    path = cache_file(env)
    path.parent.mkdir(parents=True)
    # Each kind of garbage, as the run reads it: one warning line, and no entry taken from it (so
    # the run goes on as a first run, and writes what a first run writes).
    for garbage in GARBAGE:
        path.write_bytes(garbage)
        assert device_cache._read_cache(str(path)) == [], garbage
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("clconv: warning: device cache "), (garbage, lines)
        assert str(path) in lines[0] and "corrupt" in lines[0]
    # And a run on the garbage that parses furthest (JSON of this schema, entries of the wrong shape).
    path.write_bytes(GARBAGE[2])
    result = run(["apply", "-k", "sobel-x", "--force", png, tmp_path / "out.png"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("clconv: warning: device cache "), result.stderr
    assert str(path) in lines[0] and "corrupt" in lines[0]
    rewritten = json.loads(path.read_text())
    assert rewritten["entries"]
    # The same file a first run writes: read back (the second run of cache_runs), it says nothing.
    assert rewritten == cache_runs.doc


def test_a_cache_of_another_schema_is_passed_over_silently(env, png, tmp_path):
    path = cache_file(env)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema": 99, "entries": "whatever"}))
    result = run(["apply", "-k", "sobel-x", png, tmp_path / "out.png"], env, tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert json.loads(path.read_text())["schema"] == runtime.CACHE_SCHEMA


def test_a_changed_vendors_folder_invalidates_the_cache(env, png, tmp_path):
    vendors = tmp_path / "vendors"
    vendors.mkdir()
    system = os.environ.get("OCL_ICD_VENDORS") or os.environ.get("OPENCL_VENDOR_PATH") or "/etc/OpenCL/vendors"
    if os.path.isdir(system):
        for icd in Path(system).glob("*.icd"):
            shutil.copy(icd, vendors / icd.name)
    env["OCL_ICD_VENDORS"] = str(vendors)
    args = ["apply", "-k", "sobel-x", "--force", png, tmp_path / "out.png"]
    assert not probe(args, env, tmp_path)[1]["cached"]
    assert probe(args, env, tmp_path)[1]["cached"]
    (vendors / "zz-other.icd").write_text("libOpenCL-vendor-that-is-not-here.so\n")  # a driver installed
    result, seen, other = probe(args, env, tmp_path)
    assert result.returncode == 0 and other == [], result.stderr
    assert not seen["cached"]
    assert seen["ocl_icd_vendors"] == str(vendors)  # the user's value, untouched
    entries = json.loads(cache_file(env).read_text())["entries"]
    assert len(entries) == 2 and entries[0]["key"]["vendors"] != entries[1]["key"]["vendors"]
    assert probe(args, env, tmp_path)[1]["cached"]


@pytest.mark.parametrize("named", [["--device", "cpu"], ["--device=cpu"], "CLCONV_DEVICE", "PYOPENCL_CTX",
                                   "CLCONV_DEVICE_CACHE"])
def test_a_named_device_or_a_disabled_cache_bypasses_it(named, env, png, tmp_path):
    args = ["apply", "-k", "sobel-x", png, tmp_path / "out.png"]
    if isinstance(named, list):
        args += named
    elif named == "CLCONV_DEVICE_CACHE":
        env[named] = "0"
    else:
        env[named] = runtime.get_runtime(None).info.index if named == "PYOPENCL_CTX" else "cpu"
    result = run(args, env, tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert not (tmp_path / "xdg" / "clconv").exists()


def test_devices_lists_every_platform_whatever_the_cache(env, tmp_path, cache_runs, run_cli, monkeypatch):
    """`clconv devices` run with the cache an apply wrote (cache_runs' first run) lists what
    the command line lists without one (in this process, which never uses the cache)."""
    for name in ENV_LEFT_OUT:
        monkeypatch.delenv(name, raising=False)
    before = run_cli("devices", env={"XDG_CACHE_HOME": tmp_path / "empty"})
    assert before.returncode == 0, before.stderr
    write_cache(env, cache_runs.doc)
    assert cache_file(env).exists()
    after = run(["devices"], env, tmp_path)
    assert after.stdout == before.stdout and after.stderr == before.stderr
    assert len(after.stdout.splitlines()) == len(runtime.list_devices())


def test_a_remembered_icd_that_misses_falls_back_to_every_icd(env, tmp_path, cache_runs):
    args = ["apply", "-k", "sobel-x", "--force", cache_runs.png, tmp_path / "out.png"]
    expected = cache_runs.a  # the same input and kernel
    doc = copy.deepcopy(cache_runs.doc)  # the cache a first run wrote
    good = dict(doc["entries"][0])
    # a "library" that exists, unchanged since it was remembered, but gives no OpenCL platform
    impostor = tmp_path / "libnot-an-icd.so"
    impostor.write_bytes(b"not a shared object")
    doc["entries"][0].update(library=str(impostor), library_stat=runtime._stat(str(impostor)))
    write_cache(env, doc)
    result, seen, other = probe(args, env, tmp_path)
    assert result.returncode == 0 and other == [], result.stderr  # rerun with every ICD: no word of it
    assert not seen["cached"] and seen["ocl_icd_vendors"] == env.get("OCL_ICD_VENDORS")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)
    rewritten = json.loads(cache_file(env).read_text())
    (entry,) = rewritten["entries"]
    assert entry["library"] == good["library"] and entry["restrict"]
    # The very cache a first run writes: the next run uses it (the second run of cache_runs).
    assert rewritten == cache_runs.doc


def test_the_library_never_uses_the_cache(env, tmp_path):
    code = ("import numpy as np, clconv; clconv.convolve(np.ones((8, 8), np.float32), 'box');"
            "from clconv import runtime; assert runtime._cache.path is None")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "xdg" / "clconv").exists()


# ---------------------------------------------------------------------------------------- the device thread


def test_errors_keep_their_order_with_the_device_thread(env, png, tmp_path):
    env["PYOPENCL_CTX"] = "9:9"  # a device that is not there: the thread fails
    missing = run(["apply", "-k", "sobel-x", tmp_path / "missing.png", tmp_path / "out.png"], env, tmp_path)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "missing.png" in missing.stderr  # the input is read (and refused) before the device is needed
    device = run(["apply", "-k", "sobel-x", png, tmp_path / "out.png"], env, tmp_path)
    assert device.returncode == 2 and device.stderr.count("\n") == 1, device.stderr
    assert device.stderr.startswith("clconv: error: --device 9:9: no device with that index")
    assert not (tmp_path / "out.png").exists()


def test_bad_usage_still_exits_2_with_the_thread_running(env, png, tmp_path):
    bad = run(["apply", "-k", "no-such-kernel", png, tmp_path / "out.png"], env, tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("clconv: error: ") and bad.stderr.count("\n") == 1
    (tmp_path / "exists.png").write_bytes(b"x")
    exists = run(["apply", "-k", "sobel-x", png, tmp_path / "exists.png"], env, tmp_path)
    assert exists.returncode == 2 and "exists" in exists.stderr
    assert (tmp_path / "exists.png").read_bytes() == b"x"


# ---------------------------------------------------------------------------------------- PNG writer


def photo(h, w, c, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 120 + 80 * np.sin(x / 17.0)[..., None] * np.cos(y / 23.0)[..., None] + rng.normal(0, 4, (h, w, c))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("c", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(300, 301), (1, 70000), (70000, 1), (257, 129)])
def test_own_png_writer_gives_the_same_pixels(c, shape, tmp_path):
    a = photo(*shape, c)
    direct = io.BytesIO()
    imageio._write_png8(direct, a.reshape(a.shape[0], -1), c, None, (300, 150))
    out = tmp_path / "o.png"  # and through save, whichever writer it takes
    imageio.save(out, a, has_alpha=c in (2, 4), color="L" if c <= 2 else "RGB", meta={"dpi": (300, 150)})
    for source in (io.BytesIO(direct.getvalue()), out):
        with Image.open(source) as im:
            im.load()
            assert im.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
            assert [round(v) for v in im.info["dpi"]] == [300, 150]
            assert np.array_equal(np.asarray(im).reshape(a.shape), a)


def test_photographs_take_the_own_writer(monkeypatch, tmp_path):
    a = photo(300, 400, 3)
    assert a.nbytes >= imageio.PNG_OWN_MIN_BYTES and imageio._png_rle_pays(a.reshape(300, -1), 3)
    monkeypatch.setattr(Image.Image, "save", lambda *args, **kwargs: pytest.fail("Pillow wrote it"))
    imageio.save(tmp_path / "o.png", a, has_alpha=False, color="RGB", meta={})
    monkeypatch.undo()
    with Image.open(tmp_path / "o.png") as im:
        assert np.array_equal(np.asarray(im), a)


def test_own_png_writer_keeps_the_icc_profile(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    a = photo(200, 200, 3)
    imageio.save(tmp_path / "o.png", a, has_alpha=False, color="RGB", meta={"icc_profile": icc})
    with Image.open(tmp_path / "o.png") as im:
        assert im.info["icc_profile"] == icc
        assert np.array_equal(np.asarray(im), a)


def test_flat_graphics_still_go_through_pillow(monkeypatch, tmp_path):
    a = np.zeros((256, 256, 4), np.uint8)
    a[64:192, 64:192] = (200, 30, 30, 255)
    a[100:150, :, 1] = np.arange(256, dtype=np.uint8) // 8 * 8
    assert not imageio._png_rle_pays(a.reshape(256, -1), 4)
    called = []
    monkeypatch.setattr(imageio.png, "_write_png8", lambda *args: called.append(1))
    imageio.save(tmp_path / "o.png", a, has_alpha=True, color="RGB", meta={})
    assert not called
    with Image.open(tmp_path / "o.png") as im:
        assert np.array_equal(np.asarray(im), a)


def test_own_png_writer_is_fast_and_about_pillows_size():
    """Not a timing test: sizes only (98-106% of Pillow's level 4 on photographs, README)."""
    a = photo(512, 512, 3)
    ours, pillows = io.BytesIO(), io.BytesIO()
    imageio.writer("o.png", a, has_alpha=False, color="RGB")(ours)
    Image.fromarray(a).save(pillows, "PNG", compress_level=imageio.PNG_COMPRESS_LEVEL)
    assert len(ours.getvalue()) <= 1.08 * len(pillows.getvalue())


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_fast_png_write_leaves_nothing(monkeypatch, tmp_path, exc):
    real = imageio._write_png

    def fail_midway(fo, *args):
        fo.write(b"\x89PNG partial")
        raise exc

    monkeypatch.setattr(imageio.png, "_write_png", fail_midway)
    out = tmp_path / "o.png"
    with pytest.raises(OutputError if isinstance(exc, OSError) else KeyboardInterrupt):
        imageio.save(out, photo(200, 200, 3), has_alpha=False, color="RGB", meta={})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(imageio.png, "_write_png", real)


def test_concurrent_first_runs_leave_one_whole_cache_file(env, png, tmp_path):
    script = str(Path(sys.executable).with_name("clconv"))
    procs = [subprocess.Popen([script, "apply", "-k", "sobel-x", png, tmp_path / f"o{i}.png"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0 and err == b"", err
    (entry,) = json.loads(cache_file(env).read_text())["entries"]
    assert [p.name for p in cache_file(env).parent.iterdir()] == ["device.json"]  # no temporary left
    assert entry["restrict"]


def png_chunks(data: bytes):
    pos = 8
    while pos < len(data):
        n = int.from_bytes(data[pos: pos + 4], "big")
        yield data[pos + 4: pos + 8], data[pos + 8: pos + 8 + n]
        pos += 12 + n


@pytest.mark.parametrize("h, w, c", [(1024, 1024, 3), (700, 1200, 4), (3, 300000, 3), (2000, 600, 2)])
def test_bands_deflated_in_parallel_make_one_valid_zlib_stream(h, w, c, monkeypatch):
    monkeypatch.setattr(imageio.png, "_png_workers", lambda nbytes: 3)
    a = photo(h, w, c, seed=h)
    out = io.BytesIO()
    imageio._write_png8(out, a.reshape(h, -1), c, None, None)
    idat = b"".join(body for kind, body in png_chunks(out.getvalue()) if kind == b"IDAT")
    raw = zlib.decompress(idat)  # checks the combined Adler-32
    assert len(raw) == h * (w * c + 1)
    with Image.open(io.BytesIO(out.getvalue())) as im:
        assert np.array_equal(np.asarray(im).reshape(a.shape), a)


def test_adler32_combine_matches_zlib():
    rng = np.random.default_rng(5)
    for n1, n2 in [(0, 0), (0, 9), (9, 0), (1, 65521), (70000, 5), (123457, 654321)]:
        a, b = rng.bytes(n1), rng.bytes(n2)
        assert imageio._adler32_combine(zlib.adler32(a), zlib.adler32(b), n2) == zlib.adler32(a + b)


# ---------------------------------------------------------------------------------------- builds in two threads


def test_a_program_asked_for_by_two_threads_is_built_once(runtime):
    import threading

    from clconv.runtime import Runtime

    rt = Runtime(runtime.info, runtime.device)  # a context of its own: nothing built yet
    name = "direct.cl"
    builds = rt.builds
    got = []
    threads = [threading.Thread(target=lambda: got.append(rt.program(name))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 3 and all(p is got[0] for p in got)
    assert rt.builds == builds + 1 and name in rt.build_seconds


def test_image_warnings_leave_out_the_device_threads(capfd):
    import warnings

    import pyopencl

    with imageio._Relay("in.png"):
        warnings.warn("Non-empty compiler output", pyopencl.CompilerWarning)
        warnings.warn("something about this file", UserWarning)
    err = capfd.readouterr().err
    assert err == "clconv: warning: in.png: something about this file\n"
