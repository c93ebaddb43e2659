"""The progress bar of ``clconv batch``, drawn by tqdm on the stream the command line gives
(its terminal); nothing at all without one."""

from __future__ import annotations

import os

# [#####...................] 5/24 files  2.31 images/s  ETA 00:08, 1 failed
_FORMAT = "[{bar:24}] {n_fmt}/{total_fmt} files {rate_noinv_fmt}  ETA {remaining}{postfix}"


class Progress:
    """Files done of all (those passed over or failed before the run count as done), images
    filtered a second, the time left, and the failures. Redrawn at most ten times a second."""

    def __init__(self, stream, total: int, done: int, failed: int):
        self.stream, self.failed, self.bar = stream, failed, None
        if stream is None:
            return
        # Imported only to draw: worker processes import this package too, and tqdm takes a while.
        from tqdm import tqdm

        # smoothing=0: the rate is the mean since the start, over the files this run filters
        # (n - initial); ascii ".#": the bar reads the same on any terminal.
        columns, lines = _terminal_size(stream)
        self.bar = tqdm(
            total=total,
            initial=done,
            file=stream,
            bar_format=_FORMAT,
            ascii=".#",
            unit=" images",
            smoothing=0,
            mininterval=0.1,
            miniters=1,
            ncols=columns,
            nrows=lines,
            postfix=self._failures(),
        )

    def advance(self, failed: bool) -> None:
        """One more file ended (``failed``: without an output)."""
        if self.bar is None:
            return
        if failed:
            self.failed += 1
            self.bar.set_postfix_str(self._failures(), refresh=False)
        self.bar.update(1)

    def say(self, write_line, message: str) -> None:
        """``write_line(message)`` with the bar wiped first and drawn again after, so the two never
        share a line (a warning goes to stderr, which is the same terminal)."""
        if self.bar is None:
            write_line(message)
            return
        with self.bar.external_write_mode(file=self.stream):
            write_line(message)

    def close(self) -> None:
        """Draw the final state and end the bar's line."""
        if self.bar is not None:
            self.bar.close()

    def _failures(self) -> str | None:
        return f"{self.failed} failed" if self.failed else None


def _terminal_size(stream) -> tuple[int, int]:
    """The columns (less one: the last would wrap) and lines tqdm fits the bar in. 80x24 where the
    stream tells none: a pseudo-terminal may say 0x0, in which tqdm would draw nothing."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return 79, 24
    return (size.columns or 80) - 1, size.lines or 24
