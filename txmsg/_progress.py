# -*- test-case-name: txmsg.test.test_progress -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Progress of a long console command: a bar with count, rate and time left on
a terminal (drawn by C{rich}), plain periodic lines otherwise (a log file, a
pipe, CI), and a last line at the end in both cases.

    with progress(1000, "sent") as bar:
        ...
        bar.advance()

Drawing is manual (no refresh thread): the bar is redrawn at most ten times
a second from the reactor thread, so it costs nothing measurable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["Progress", "progress"]


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds + 0.5)
    return "{}:{:02d}".format(seconds // 60, seconds % 60)


class Progress:
    """
    Counts steps of a known total and shows them on C{stream}.

    @ivar done: steps done.
    @ivar failed: steps that failed (shown when non-zero).
    """

    def __init__(
        self,
        total: int,
        description: str,
        *,
        stream: IO[str] | None = None,
        interval: float = 5.0,
        tty: bool | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        @param total: the number of steps.
        @param description: what a step is (C{"sent"}, C{"requeued"}).
        @param stream: where to draw (default: standard error).
        @param interval: seconds between plain lines when not on a terminal.
        @param tty: draw a bar (default: whether C{stream} is a terminal).
        @param now: the clock (monotonic seconds).
        """
        self.total = max(0, total)
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.tty = self.stream.isatty() if tty is None else tty
        self._now = now
        self.started = now()
        self._last = self.started
        self.done = 0
        self.failed = 0
        self._bar: Any = None
        self._task: Any = None

    def start(self) -> None:
        """
        Show the empty bar (on a terminal).
        """
        if not self.tty or self._bar is not None:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        console = Console(file=self.stream)
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failures]}"),
            console=console,
            auto_refresh=False,
            transient=False,
        )
        self._task = self._bar.add_task(self.description, total=self.total, rate="", failures="")
        self._bar.start()

    def rate(self) -> float:
        """
        Steps per second so far.
        """
        return self.done / max(self._now() - self.started, 1e-9)

    def line(self) -> str:
        """
        The plain progress line: C{sent 40/100 (12.5/s, ETA 0:05)}.
        """
        rate = self.rate()
        left = (self.total - self.done) / rate if rate > 0 else None
        text = "{} {}/{} ({:.1f}/s, ETA {})".format(
            self.description, self.done, self.total, rate, _eta(left)
        )
        if self.failed:
            text += ", {} failed".format(self.failed)
        return text

    def advance(self, steps: int = 1, *, failed: bool = False) -> None:
        """
        Count C{steps} more (failed ones count as done too).
        """
        self.done += steps
        if failed:
            self.failed += steps
        now = self._now()
        if self._bar is not None:
            if now - self._last >= 0.1 or self.done >= self.total:
                self._last = now
                self._draw()
        elif not self.tty and self.total > 1 and now - self._last >= self.interval:
            self._last = now
            print(self.line(), file=self.stream, flush=True)

    def _draw(self) -> None:
        self._bar.update(
            self._task,
            completed=self.done,
            rate="{:.1f}/s".format(self.rate()),
            failures="{} failed".format(self.failed) if self.failed else "",
        )
        self._bar.refresh()

    def finish(self) -> None:
        """
        Draw the final state and stop.
        """
        if self._bar is not None:
            self._draw()
            self._bar.stop()
            self._bar = None
        elif not self.tty:
            print(self.line(), file=self.stream, flush=True)


@contextmanager
def progress(total: int, description: str, **kw: Any) -> Iterator[Progress]:
    """
    A started L{Progress}, finished on exit.  A total of one or less shows
    nothing (a single step needs no bar).
    """
    bar = Progress(total, description, **kw)
    if total > 1:
        bar.start()
    try:
        yield bar
    finally:
        if total > 1:
            bar.finish()
