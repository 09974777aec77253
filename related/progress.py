"""Progress on stderr: a bar on a terminal, a log line every few seconds otherwise.

Results go to stdout; this only ever writes to the stream it is given (stderr by default).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class _Closing:
    """``with progress(label, total) as bar:`` closes the bar however the stage ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass


class Progress(_Closing):
    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.done = label, total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.is_terminal = self.stream.isatty()
        self.interval = interval if not self.is_terminal else 0.1
        self.clock = clock
        self.started = self.last = clock()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._draw(now)

    def close(self) -> None:
        if self.is_terminal:
            self._draw(self.clock())
            self.stream.write("\n")
        elif self.clock() - self.started >= self.interval:
            self._draw(self.clock())  # a final line for stages long enough to have logged
        self.stream.flush()

    def _draw(self, now: float) -> None:
        share = self.done / self.total if self.total else 1.0
        elapsed = now - self.started
        if self.is_terminal:
            width = 30
            filled = int(share * width)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(
                f"\r{self.label:<11} [{bar}] {share:4.0%} {self.done}/{self.total} {elapsed:5.1f}s"
            )
        else:
            self.stream.write(
                f"related: {self.label} {self.done}/{self.total} ({share:.0%}, {elapsed:.1f}s)\n"
            )
        self.stream.flush()


class NoProgress(_Closing):
    def __init__(self, label: str = "", total: int = 0, **_: object):
        pass

    def advance(self, n: int = 1) -> None:
        pass


ProgressFactory = Callable[[str, int], "Progress | NoProgress"]
