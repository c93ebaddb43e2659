"""IN_DIR and OUT_DIR of ``clconv batch`` as fsspec URLs (``s3://bucket/in``, ``file:///data/in``).

fsspec (and s3fs for ``s3://``) is imported only when a URL is given. A URL whose filesystem is
the local one (``file://``) becomes its plain path, so the local rules hold (links, atomic
renames). Any other URL is remote: this process lists the inputs and checks the outputs through
fsspec; a worker copies its input into a local temporary file to decode it; the output is encoded
into a local temporary file, put at its URL in one ``put_file`` (by the worker of ``--cluster``;
by this process in the local batch, where it renames otherwise). On an object store that is a
single PUT (or a multipart upload, which shows nothing until it completes), so an output is whole
or absent, and no temporary key is written.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile

from clconv.errors import ClconvError, ImageError, OptionError, OutputError, collected_warnings, warn


def is_remote(path: str) -> bool:
    """A URL of a filesystem other than the local one (``file://`` URLs are made paths first)."""
    return "://" in path


def as_path(where: str) -> str:
    """A ``file://`` URL as its local path; anything else as given."""
    if not is_remote(where):
        return where
    from fsspec.implementations.local import LocalFileSystem

    fs, path = filesystem(where)
    return path if isinstance(fs, LocalFileSystem) else where


def filesystem(url: str):
    """(the fsspec filesystem of ``url``, the path in it); a URL fsspec cannot open: exit 2."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise OptionError(None, f"{url}: URLs need fsspec: pip install 'clconv[dask]'") from None
    try:
        return url_to_fs(url)
    except ImportError as e:  # a known protocol whose package is missing (s3fs for s3://)
        raise OptionError(None, f"{url}: {e}") from None
    except ValueError as e:  # a protocol fsspec does not know
        raise OptionError(None, f"{url}: {e}") from None


def check_folders(in_dir: str, out_dir: str) -> None:
    """The local _check_folders' rules for URLs: IN_DIR a folder, OUT_DIR not a file, not IN_DIR
    and not holding it."""
    for where in (in_dir, out_dir):  # listings cached by an earlier run in this process are stale
        if is_remote(where):
            filesystem(where)[0].invalidate_cache()
    if is_remote(in_dir):
        kind = _asked(in_dir, ImageError, _kind, *filesystem(in_dir))
        if kind != "directory":
            raise ImageError(in_dir, "is not a folder" if kind else "no such folder")
    if is_remote(out_dir) and _asked(out_dir, OutputError, _kind, *filesystem(out_dir)) == "file":
        raise OutputError(out_dir, "is not a folder")
    if is_remote(in_dir) and is_remote(out_dir) and _inside(in_dir, out_dir):
        if _key(in_dir) == _key(out_dir):
            raise OutputError(out_dir, "is IN_DIR; write the results to another folder")
        raise OutputError(out_dir, "contains IN_DIR; write the results to a folder outside it")


def _kind(fs, path: str) -> str | None:
    """The type of ``path``: file, directory (a key prefix on an object store), or None where nothing is."""
    try:
        return fs.info(path)["type"]
    except FileNotFoundError:
        return None


def _asked(url: str, error, question, *args, **kwargs):
    """``question(*args, **kwargs)`` of a remote filesystem; one it cannot answer (no credentials,
    no network, no permission) is ``error(url, cause)``, exit 2, rather than an internal error."""
    try:
        return question(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - botocore's errors are not OSErrors: each is a cause to name
        raise error(url, f"cannot reach it: {type(e).__name__}: {e}") from None


def _prefix(fs) -> str:
    """``s3://`` of an s3fs filesystem: what makes its paths comparable with another's."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{protocol}://"


def _key(url: str) -> str:
    fs, path = filesystem(url)
    return _prefix(fs) + path.rstrip("/")


def _inside(url: str, folder: str) -> bool:
    url, folder = _key(url), _key(folder)
    return url == folder or url.startswith(folder + "/")


def find_inputs(in_dir: str, out_dir: str, recursive: bool, wanted, passed_over: list | None = None) -> list[str]:
    """tasks.find_inputs for a remote IN_DIR: the files whose name is ``wanted(name)``, sorted;
    OUT_DIR (when it lies inside IN_DIR) left out. Object stores have no links to follow."""
    fs, root = filesystem(in_dir)
    root = root.rstrip("/")
    out_key = _key(out_dir) if is_remote(out_dir) else None
    protocol = _prefix(fs)
    entries = _asked(in_dir, ImageError, fs.find, root, maxdepth=None if recursive else 1,
                     withdirs=not recursive, detail=True)  # fmt: skip
    found: list[str] = []
    for path, info in entries.items():
        rel = posixpath.relpath(path.rstrip("/"), root)
        if rel == "." or (out_key and (protocol + path).startswith(out_key + "/")):
            continue
        if info.get("type") == "directory":
            if passed_over is not None and protocol + path.rstrip("/") != out_key:
                passed_over.append(rel)
            continue
        if wanted(posixpath.basename(rel)):
            found.append(rel.replace("/", os.sep))
    return sorted(found)


def existing(urls: list[str]) -> set[str]:
    """Those of the remote ``urls`` that exist: one listing per folder, not a request per file."""
    listed: dict[str, set] = {}
    found = set()
    for url in urls:
        fs, path = filesystem(url)
        folder = posixpath.dirname(path)
        if folder not in listed:
            listed[folder] = _asked(url, OutputError, _names_in, fs, folder)
        if path in listed[folder]:
            found.add(url)
    return found


def _names_in(fs, folder: str) -> set[str]:
    """The paths in ``folder`` (none where it does not exist)."""
    try:
        return {p.rstrip("/") for p in fs.ls(folder, detail=False)}
    except FileNotFoundError:
        return set()


def make_folder(out_dir: str) -> None:
    """Create the remote OUT_DIR (a no-op on object stores, whose folders are key prefixes)."""
    fs, path = filesystem(out_dir)
    _asked(out_dir, OutputError, fs.makedirs, path, exist_ok=True)


@contextlib.contextmanager
def local_copy(url: str):
    """``url`` copied into a local temporary file of the same name (removed after); a plain path as is."""
    if not is_remote(url):
        yield url
        return
    fs, path = filesystem(url)
    with tempfile.TemporaryDirectory(prefix="clconv-") as folder:
        copy = os.path.join(folder, posixpath.basename(path))
        try:
            fs.get_file(path, copy)
        except FileNotFoundError as e:
            raise ImageError(url, "no such file") from e
        except OSError as e:
            raise ImageError(url, f"cannot read: {e.strerror or e}") from e
        yield copy


def load(url: str, *, gray: bool, max_pixels: int):
    """imageio.load of ``url`` (a path, or a remote URL read through a local copy); the
    warnings name the URL, not the copy."""
    from clconv import imageio

    with local_copy(url) as copy, collected_warnings() as said:
        try:
            image = imageio.load(copy, gray=gray, max_pixels=max_pixels)
        except ImageError as e:
            raise ImageError(url, e.cause) from None
    for message in said:
        warn(message.replace(copy, url))
    return image


def upload(write, url: str, stopped) -> None:
    """Encode through ``write(fileobj)`` into a local temporary file, then put it at ``url`` in
    one put_file (all or nothing on an object store); nothing is put when ``stopped()``."""
    from clconv.atomic import write_temporary

    with tempfile.TemporaryDirectory(prefix="clconv-") as folder:
        encoded = os.path.join(folder, "output" + posixpath.splitext(url)[1])
        write_temporary(encoded, url, write)
        if stopped():  # the client was interrupted and will not count this file: put nothing
            raise ClconvError(None, "interrupted")
        put(encoded, url)


def put(local: str, url: str) -> None:
    """The finished local file ``local`` put at ``url`` in one put_file."""
    fs, path = filesystem(url)
    try:
        fs.put_file(local, path)
    except OSError as e:
        raise OutputError(url, f"cannot write: {e.strerror or e}") from e
