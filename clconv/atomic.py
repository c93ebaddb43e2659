"""Atomic output: a temporary file in the output's own folder, then a rename.

The one implementation behind every file clconv writes (images, matrices,
benchmark reports): a failed or interrupted write leaves neither a partial
output nor a temporary file. Standard library only.
"""
from __future__ import annotations

import os
import secrets

from clconv.errors import OutputError


def write_atomically(path: str, write) -> None:
    """Write through ``write(fileobj)`` into a temporary file next to ``path``, then rename.

    The temporary file is created with mode 0o666 so that the umask (and a
    default ACL) applies as to any new file.  On any failure, interruption
    included, the temporary file is removed and ``path`` is left untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    ext = os.path.splitext(path)[1]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".clconv-{secrets.token_hex(6)}{ext}")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(path, f"cannot write: {e.strerror or e}") from e
    else:  # pragma: no cover
        raise OutputError(path, "cannot write: no free temporary file name")
    try:
        with os.fdopen(fd, "wb") as fo:
            write(fo)
            fo.flush()
            os.fsync(fo.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OutputError):
            raise
        if isinstance(e, OSError):
            raise OutputError(path, f"cannot write: {e.strerror or e}") from e
        raise
    try:  # make the rename durable; best effort
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
