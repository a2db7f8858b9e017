# -*- test-case-name: txmsg.test.test_helpers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Waiter lists and in-flight counting, in one place.

L{Waiters} hands out Deferreds that wait for one thing to happen ("ready",
"consuming", "idle"): each can be cancelled, can time out, and all of them
are fired or failed together (failed, typically, when the owner stops, so
that no caller waits forever).

L{InFlight} counts running operations and gives a Deferred that fires once
none runs (a drain, bounded by a timeout if asked), as
C{twisted.internet.defer.DeferredSemaphore} counts its tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from txmsg._reactor import maybe_global_reactor

__all__ = ["InFlight", "Waiters"]

_T = TypeVar("_T")


class Waiters(Generic[_T]):
    """
    Deferreds waiting for the same event.
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        """
        @param clock: schedules timeouts (default: the global reactor,
            resolved when a timeout is first asked for).
        """
        self._clock = clock
        self._waiting: list[Deferred[_T]] = []

    def __len__(self) -> int:
        return len(self._waiting)

    def wait(
        self,
        timeout: float | None = None,
        on_timeout: Callable[[], BaseException] | None = None,
    ) -> Deferred[_T]:
        """
        A Deferred firing on the next L{fire} or failing on the next
        L{fail}.  Cancelling it removes it from the list.

        @param timeout: seconds after which it fails; L{None} for no limit.
        @param on_timeout: makes the exception it fails with on timeout
            (default: C{twisted.internet.defer.TimeoutError}).
        """
        timer: list[IDelayedCall] = []

        def cancel(d: Deferred[_T]) -> None:
            self._discard(d)

        d: Deferred[_T] = Deferred(cancel)
        self._waiting.append(d)
        if timeout is not None:

            def expire() -> None:
                timer.clear()
                if self._discard(d):
                    if on_timeout is not None:
                        d.errback(on_timeout())
                    else:
                        d.errback(TimeoutError(f"not done within {timeout}s"))

            clock = maybe_global_reactor(self._clock)
            timer.append(clock.callLater(timeout, expire))

            def stop_timer(result: Any) -> Any:
                for call in timer:
                    if call.active():
                        call.cancel()
                return result

            d.addBoth(stop_timer)
        return d

    def fire(self, result: _T) -> None:
        """
        Fire every waiting Deferred with C{result} (each waiter added while
        they fire waits for the next time).
        """
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(result)

    def fail(self, reason: BaseException | Failure) -> None:
        """
        Fail every waiting Deferred with C{reason}.
        """
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(reason)

    def _discard(self, d: Deferred[_T]) -> bool:
        if d in self._waiting:
            self._waiting.remove(d)
            return True
        return False


class InFlight:
    """
    A count of running operations, with a drain.

    @ivar count: how many run now.
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        """
        @param clock: schedules drain timeouts (default: the global reactor).
        """
        self.count = 0
        self._idle: Waiters[None] = Waiters(clock)

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def enter(self) -> None:
        """
        One more operation runs.
        """
        self.count += 1

    def leave(self) -> None:
        """
        One operation finished; the drains fire when it was the last.
        """
        self.count -= 1
        if self.count == 0:
            self._idle.fire(None)

    def track(self, d: Deferred[_T]) -> Deferred[_T]:
        """
        Count C{d} as running until it fires.

        @return: C{d}, its result unchanged.
        """
        self.enter()

        def done(result: Any) -> Any:
            self.leave()
            return result

        return d.addBoth(done)

    def drain(
        self,
        timeout: float | None = None,
        on_timeout: Callable[[], BaseException] | None = None,
    ) -> Deferred[None]:
        """
        A Deferred firing once no operation runs (now, if none does).

        @param timeout: seconds to wait at most; then it fails with
            C{on_timeout()} (default C{TimeoutError}).  L{None}: no limit.
        """
        if self.count == 0:
            return succeed(None)
        return self._idle.wait(timeout, on_timeout)
