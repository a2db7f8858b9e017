# -*- test-case-name: txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Plumbing shared by the contract suites: each contract test is an C{async}
function run either on the in-memory implementations (time is a C{Clock},
advanced from timer to timer until the test finishes) or on the real servers
(time is the reactor).  The suites are mixins; a concrete test case supplies
C{run_contract}, C{clock} and the C{make_*} hooks.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase

from txmsg.testing._worker import ensure_thread_calls


def contract(fn: Callable[[Any], Coroutine[Any, Any, Any]]) -> Callable[[Any], Any]:
    """Turn C{async def test_x(self)} into a test method for both runners."""

    @functools.wraps(fn)
    def test(self: Any) -> Any:
        return self.run_contract(lambda: fn(self))

    return test


if TYPE_CHECKING:  # the helpers and suites are mixed into test cases
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class ContractHelpers(_TestCase):
    """Time helpers written once for both runners."""

    clock: Any

    if TYPE_CHECKING:  # provided by each runner

        def on_cleanup(self, stop: Callable[[], Any]) -> None: ...

    def unique(self, prefix: str = "txmsg-contract") -> str:
        """A unique name."""
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def sleep(self, seconds: float) -> Deferred:
        """Wait C{seconds} on the runner's clock."""
        return deferLater(self.clock, seconds, lambda: None)

    async def eventually(
        self, predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.02
    ) -> None:
        """Wait until C{predicate()} is true; fail after C{timeout} seconds."""
        deadline = self.clock.seconds() + timeout
        while not predicate():
            if self.clock.seconds() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s: {predicate}")
            await self.sleep(step)

    async def wait(self, d: Deferred, timeout: float = 10.0) -> Any:
        """Await C{d} with a timeout on the runner's clock."""
        return await d.addTimeout(timeout, self.clock)

    def flush_errors(self, *types: type) -> None:
        """Forget logged failures of C{types} (expected handler failures)."""
        self.flushLoggedErrors(*types)

    async def failure_of(self, d: Deferred, timeout: float = 10.0) -> Any:
        """Await C{d}, which must fail; return the exception (an L{Exception})."""
        try:
            result = await self.wait(d, timeout)
        except Exception as e:
            return e
        raise AssertionError(f"expected a failure, got {result!r}")


# The base of the contract suites: the helpers for the type checker, nothing
# at run time (the runner supplies them).
if TYPE_CHECKING:
    ContractCase = ContractHelpers
else:
    ContractCase = object


class MemoryRunner(ContractHelpers):
    """Run contract tests on a C{Clock}, in a C{SynchronousTestCase}."""

    limit = 3600.0

    def setUp(self) -> None:
        self.clock = ensure_thread_calls(Clock())
        self._stops: list = []

    def run_contract(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        d: Deferred[Any] = Deferred.fromCoroutine(fn())
        self.pump(d)
        try:
            self.successResultOf(d)
        finally:
            for stop in reversed(self._stops):
                self.pump(stop())

    def pump(self, d: Any = None) -> None:
        """Advance from timer to timer until C{d} fires (or time runs out)."""
        clock = self.clock
        start = clock.seconds()
        clock.advance(0)
        while (d is None or not d.called) and clock.seconds() - start < self.limit:
            times = [c.getTime() for c in clock.getDelayedCalls()]
            if not times:
                break
            clock.advance(max(0.0, min(times) - clock.seconds()))

    def on_cleanup(self, stop: Callable[[], Any]) -> None:
        """Call C{stop()} after the test (pumped)."""
        self._stops.append(stop)


class RealRunner(ContractHelpers):
    """Run contract tests on the real reactor, in a trial C{TestCase}."""

    timeout = 120

    def setUp(self) -> None:
        from twisted.internet import reactor  # resolved late: the real reactor trial runs

        self.clock = reactor

    def run_contract(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> Deferred:
        return Deferred.fromCoroutine(fn())

    def on_cleanup(self, stop: Callable[[], Any]) -> None:
        """Call C{stop()} after the test."""
        self.addCleanup(stop)
