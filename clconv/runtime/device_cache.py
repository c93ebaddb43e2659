"""The device cache: which OpenCL library (ICD) gave the default device, per machine and
configuration, so that later runs of the command line load only that ICD.

``enable_device_cache()`` remembers it in ``$XDG_CACHE_HOME/clconv/device.json``, and on later
runs names it in ``OCL_ICD_VENDORS`` (read by the ICD loader at its first call). It is used only
when no device is named; if the one ICD does not give the remembered device, the process runs
itself again with the full enumeration (``_fall_back``). See the README's "Start-up".
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn

from clconv.errors import DeviceError, warn
from clconv.runtime.choice import requested_spec

CACHE_SCHEMA = 1
CACHE_ENTRIES = 8  # one per machine sharing a home folder, configuration, clconv version ...
_RETRY_ENV = "_CLCONV_DEVICE_CACHE_RETRY"  # set for the rerun after a miss: the library that missed
# Everything in the environment that changes which platforms and devices there are, or their order.
_KEY_ENV = (
    "OCL_ICD_VENDORS",
    "OCL_ICD_FILENAMES",
    "OPENCL_VENDOR_PATH",
    "OCL_ICD_PLATFORM_SORT",
    "OCL_ICD_DEFAULT_PLATFORM",
    "OCL_ICD_ASSUME_ICD_EXTENSION",
    "CLCONV_DEVICE",
    "PYOPENCL_CTX",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "RUSTICL_ENABLE",
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    "ZE_AFFINITY_MASK",
)
_KEY_ENV_PREFIXES = ("POCL_", "OCLGRIND", "MESA_", "LP_", "GALLIUM_")
_DEV_PREFIXES = ("nvidia", "kfd", "dri", "accel", "mali", "kgsl", "dxg")


class _CacheMiss(Exception):
    """The remembered ICD did not give the remembered device: the full enumeration must decide."""


class _CacheState:
    def __init__(self):
        self.path: str | None = None  # None: the cache is not in use in this process
        self.key: dict | None = None
        self.entries: list = []
        self.entry: dict | None = None  # the entry being used: only its library is loaded
        self.changed_env = False  # OCL_ICD_VENDORS is ours until _restore_environment
        self.saved_env: str | None = None  # the user's OCL_ICD_VENDORS (None: unset)
        self.missed: str | None = None  # the library that missed in the run before this one


_cache = _CacheState()


def user_cache_dir() -> str:
    """``$XDG_CACHE_HOME/clconv`` (XDG_CACHE_HOME defaults to ~/.cache): clconv's per-user caches
    (the device cache here, the tuning measurements in clconv.tuning)."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "clconv")


def device_cache_path() -> str:
    """``$XDG_CACHE_HOME/clconv/device.json``."""
    return os.path.join(user_cache_dir(), "device.json")


def _entry_index(entry: dict) -> str:
    return f"{entry['platform_index']}:{entry['device_index']}"


def _stat(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _listing(folder: str, suffix: str = ""):
    """Names, sizes and times of a folder's files (and the folder's own time): any change to an
    ICD folder or to the driver files in it shows."""
    try:
        with os.scandir(folder) as it:
            files = sorted([e.name, *(_stat(e.path) or [])] for e in it if suffix in e.name)
    except OSError:
        return None
    return [_stat(folder), files]


def _pyopencl_folder() -> str | None:
    for entry in sys.path:
        folder = os.path.join(entry or ".", "pyopencl")
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            return os.path.abspath(folder)
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", "rb") as f:
            head = f.read(8192).decode("latin-1")
    except OSError:
        return ""
    for line in head.splitlines():
        if line.startswith(("model name", "Hardware", "cpu model", "uarch")):
            return line.split(":", 1)[-1].strip()
    return ""


def _environment_key() -> dict:
    """What the choice depends on: a different value anywhere means the full enumeration."""
    from clconv import __version__

    env = {k: os.environ.get(k) for k in _KEY_ENV}
    env.update({k: v for k, v in os.environ.items() if k.startswith(_KEY_ENV_PREFIXES)})
    vendors = os.environ.get("OCL_ICD_VENDORS") or os.environ.get("OPENCL_VENDOR_PATH") or "/etc/OpenCL/vendors"
    pyopencl = _pyopencl_folder()
    try:
        dev = sorted(n for n in os.listdir("/dev") if n.startswith(_DEV_PREFIXES))
        dev += sorted(os.listdir("/dev/dri")) if "dri" in dev else []
    except OSError:
        dev = None
    return {
        "clconv": __version__,
        "python": sys.prefix,
        "host": os.uname().nodename,
        "cpu": _cpu_model(),
        "env": env,
        "vendors": [vendors, _listing(vendors) if os.path.isdir(vendors) else _stat(vendors)],
        "pyopencl": [
            pyopencl,
            _listing(os.path.join(pyopencl, ".libs")) if pyopencl else None,
            _listing(pyopencl, ".so")[1] if pyopencl and os.path.isdir(pyopencl) else None,
        ],
        "dev": dev,
    }


_ENTRY_FIELDS = {
    "key": dict,
    "library": str,
    "library_stat": list,
    "platform": str,
    "device": str,
    "kind": str,
    "platform_index": int,
    "device_index": int,
    "restrict": bool,
}


def _read_cache(path: str) -> list:
    """The entries of the cache file; [] when there is none, or (with one warning) when it is
    corrupt. A file of another schema (another clconv) is passed over without a word."""
    import json

    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except FileNotFoundError:
        return []
    except OSError as exc:
        warn(f"device cache {path} cannot be read ({exc.strerror or exc}); ignoring it")
        return []
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if doc.get("schema") != CACHE_SCHEMA:
            return []
        entries = doc.get("entries")
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and all(isinstance(e.get(k), t) for k, t in _ENTRY_FIELDS.items()) for e in entries
        ):
            raise ValueError("unexpected contents")
    except (ValueError, UnicodeDecodeError) as exc:
        warn(f"device cache {path} is corrupt ({str(exc)[:80]}); ignoring it (it is rewritten, or delete it)")
        return []
    return entries


def _write_cache(path: str, entries: list) -> None:
    """Atomically (temporary file, then rename): concurrent runs leave one whole file. A cache
    that cannot be written is no error: the next run enumerates again."""
    import json
    import tempfile

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".device-", suffix=".json", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"schema": CACHE_SCHEMA, "entries": entries[:CACHE_ENTRIES]}, f, indent=1)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass


def enable_device_cache() -> bool:
    """Use (and keep up to date) the device cache in this process. Call before anything touches
    OpenCL, only where ``reexec`` is safe (nothing read or written yet). Returns whether a
    remembered ICD will be the only one loaded."""
    missed = os.environ.pop(_RETRY_ENV, None)
    if (
        _cache.path is not None
        or not sys.platform.startswith("linux")
        or "pyopencl._cl" in sys.modules
        or os.environ.get("CLCONV_DEVICE_CACHE", "1").strip() in ("0", "no", "off", "false")
        or requested_spec(None) is not None
    ):
        return False
    import json

    _cache.path = device_cache_path()
    _cache.key = json.loads(json.dumps(_environment_key()))  # as it reads back from the file
    _cache.missed = missed
    _cache.entries = _read_cache(_cache.path)
    if missed is not None:
        return False
    for entry in _cache.entries:
        if entry["key"] == _cache.key and entry["restrict"] and _stat(entry["library"]) == entry["library_stat"]:
            _cache.entry = entry
            _cache.saved_env = os.environ.get("OCL_ICD_VENDORS")
            _cache.changed_env = True
            os.environ["OCL_ICD_VENDORS"] = entry["library"]
            return True
    return False


def _restore_environment() -> None:
    """The ICD loader has read OCL_ICD_VENDORS: give the user's value back (child processes)."""
    if not _cache.changed_env:
        return
    if _cache.saved_env is None:
        os.environ.pop("OCL_ICD_VENDORS", None)
    else:
        os.environ["OCL_ICD_VENDORS"] = _cache.saved_env
    _cache.changed_env = False


def _library_of(device) -> str | None:
    """The ICD library behind ``device``'s platform: every ICD platform handle starts with its
    dispatch table, whose functions live in the ICD library (dladdr names it)."""
    import ctypes

    class DlInfo(ctypes.Structure):
        _fields_ = [
            ("dli_fname", ctypes.c_char_p),
            ("dli_fbase", ctypes.c_void_p),
            ("dli_sname", ctypes.c_char_p),
            ("dli_saddr", ctypes.c_void_p),
        ]

    try:
        handle = device.platform.int_ptr
        dispatch = ctypes.c_void_p.from_address(handle).value
        function = ctypes.c_void_p.from_address(dispatch).value if dispatch else None
        if not function:
            return None
        info = DlInfo()
        if not ctypes.CDLL(None).dladdr(ctypes.c_void_p(function), ctypes.byref(info)) or not info.dli_fname:
            return None
        library = os.fsdecode(info.dli_fname)
    except (AttributeError, OSError, ValueError, TypeError):
        return None
    base = os.path.basename(library)
    if not os.path.isabs(library) or base.startswith("libOpenCL") or os.path.isdir(library):
        return None  # not an ICD of its own: nothing to restrict to
    return library


def _record(rt) -> None:
    """Remember that the full enumeration chose ``rt``, a Runtime (only in processes that enabled
    the cache)."""
    if _cache.path is None or _cache.key is None:
        return
    library = _library_of(rt.device)
    stat = _stat(library) if library else None
    if stat is None:
        return
    entry = {
        "key": _cache.key,
        "library": library,
        "library_stat": stat,
        "platform": rt.info.platform,
        "device": rt.info.name,
        "kind": rt.info.kind,
        "platform_index": rt.info.platform_index,
        "device_index": rt.info.device_index,
        # after a miss on this very library, loading it alone does not work here: do not try again
        "restrict": library != _cache.missed,
    }
    kept = [e for e in _cache.entries if e["key"] != _cache.key]
    if any(e == entry for e in _cache.entries):
        return
    _write_cache(_cache.path, [entry] + kept)


def _fall_back(miss: _CacheMiss) -> NoReturn:
    """The remembered ICD missed: run this command again, from the start, with every ICD."""
    _restore_environment()
    os.environ[_RETRY_ENV] = _cache.entry["library"] if _cache.entry else ""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    argv = list(getattr(sys, "orig_argv", []) or [])
    try:
        if not argv:  # pragma: no cover - Python < 3.10
            raise OSError("no sys.orig_argv")
        os.execv(sys.executable, [sys.executable] + argv[1:])
    except OSError as exc:
        raise DeviceError(
            None, f"device cache: {miss}, and clconv could not start again ({exc}); run the command again"
        ) from miss
