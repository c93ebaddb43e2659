"""Atomic output: a temporary file in the output's own folder, then a rename.

The one implementation behind every file clconv writes (images, matrices,
benchmark reports): a failed or interrupted write leaves neither a partial
output nor a temporary file. ``batch`` splits the two steps: a worker process
writes the temporary file whose name the main process chose (so the main
process can remove it if the worker is stopped), and the main process renames
it. Standard library only.
"""

from __future__ import annotations

import os
import secrets

from clconv.errors import OutputError

TEMP_PREFIX = ".clconv-"  # never taken for an input by batch


def temporary_path(path: str) -> str:
    """A fresh temporary name beside ``path``, with its extension."""
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}{os.path.splitext(path)[1]}")


def write_temporary(tmp: str, path: str, write) -> None:
    """Create ``tmp`` (which must not exist) for output ``path``, fill it through ``write(fileobj)``
    and flush it to disk. On any failure, interruption included, ``tmp`` is removed."""
    # read-write: a TIFF's tags are appended after its pixels by reading its first IFD back
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        # Mode 0o666 so that the umask (and a default ACL) applies as to any new file.
        fd = os.open(tmp, flags, 0o666)
    except OSError as e:
        raise OutputError(path, f"cannot write: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "w+b") as fo:
            write(fo)
            fo.flush()
            os.fsync(fo.fileno())
    except BaseException as e:
        discard(tmp)
        if isinstance(e, OSError):
            raise OutputError(path, f"cannot write: {e.strerror or e}") from e
        raise


def commit(tmp: str, path: str) -> None:
    """Rename the finished ``tmp`` over ``path`` and make the rename durable (best effort)."""
    try:
        os.replace(tmp, path)
    except BaseException as e:
        discard(tmp)
        if isinstance(e, OSError):
            raise OutputError(path, f"cannot write: {e.strerror or e}") from e
        raise
    try:
        dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def discard(tmp: str) -> None:
    """Remove the temporary file ``tmp`` if it is there; never raises."""
    try:
        os.unlink(tmp)
    except OSError:
        pass


def write_atomically(path: str, write) -> None:
    """Write through ``write(fileobj)`` into a temporary file next to ``path``, then rename.

    On any failure, interruption included, the temporary file is removed and
    ``path`` is left untouched.
    """
    for _ in range(100):
        tmp = temporary_path(path)
        try:
            write_temporary(tmp, path, write)
            break
        except OutputError as e:
            if not isinstance(e.__cause__, FileExistsError):
                raise
    else:  # pragma: no cover
        raise OutputError(path, "cannot write: no free temporary file name")
    commit(tmp, path)
