# -*- test-case-name: txmsg.test.test_testing_fakes -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The event sink and the thread pool of L{txmsg.testing}: L{RecordingEvents}
records what txmsg's services report, L{SyncThreadPool} runs blocking work
on the test's own thread, at once or when told to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from txmsg.events import IEventSink, IThreadPool

__all__ = ["RecordingEvents", "SyncThreadPool"]


@implementer(IEventSink)
class RecordingEvents:
    """
    An event sink that records every event it is sent and handles none:
    pass it as C{events=} to a txmsg service and look at L{events}.

    @ivar events: C{(name, payload, source)} triples, in order.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, str | None]] = []

    def dispatch(
        self,
        name: str,
        payload: Any = None,
        *,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Deferred[None]:
        """Record the event; the Deferred has already fired."""
        self.events.append((name, payload, source))
        return succeed(None)

    def names(self) -> list[str]:
        """The names of the events recorded, in order."""
        return [name for name, _, _ in self.events]

    def named(self, name: str) -> list[Any]:
        """The payloads of the events called C{name}, in order."""
        return [payload for n, payload, _ in self.events if n == name]


@implementer(IThreadPool)
class SyncThreadPool:
    """
    A thread pool without threads: work runs on the calling thread, at once
    or, with C{hold=True}, only when L{run_all} is called (so a test can
    look at the state while the work is "in its thread").

    @ivar work: the work waiting for L{run_all}, as C{(onResult, f, args,
        kwargs)}.
    """

    def __init__(self, hold: bool = False) -> None:
        """
        @param hold: keep work until L{run_all} instead of running it at once.
        """
        self.hold = hold
        self.work: list[
            tuple[Callable[[bool, Any], object] | None, Callable[..., Any], tuple, dict]
        ] = []

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object] | None,
        func: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> None:
        """Run C{func(*args, **kw)} (now, or on L{run_all}) and report to C{onResult}."""
        if self.hold:
            self.work.append((onResult, func, args, kw))
        else:
            _run(onResult, func, args, kw)

    def callInThread(self, func: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run C{func(*args, **kw)} (now, or on L{run_all})."""
        self.callInThreadWithCallback(None, func, *args, **kw)

    def run_all(self) -> None:
        """Run the work held so far, in order."""
        work, self.work = self.work, []
        for onResult, f, args, kw in work:
            _run(onResult, f, args, kw)

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""


def _run(
    onResult: Callable[[bool, Any], object] | None,
    f: Callable[..., Any],
    args: tuple,
    kw: dict,
) -> None:
    """Call C{f} and report like L{twisted.python.threadpool.ThreadPool} does."""
    try:
        result = f(*args, **kw)
    except BaseException:
        if onResult is not None:
            onResult(False, Failure())
    else:
        if onResult is not None:
            onResult(True, result)
