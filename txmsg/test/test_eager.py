# -*- test-case-name: txmsg.test.test_eager -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg._eager.start_eagerly}.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from txmsg._eager import start_eagerly

_var: ContextVar[str] = ContextVar("_var", default="unset")


class StartEagerlyTests(SynchronousTestCase):
    def test_finished_without_waiting(self) -> None:
        """
        A coroutine that finishes without waiting (awaiting Deferreds that
        have fired, and coroutines) gives a fired Deferred of its result.
        """

        async def inner() -> int:
            return await succeed(1)

        async def outer() -> int:
            return await inner() + await succeed(2)

        self.assertEqual(self.successResultOf(start_eagerly(outer())), 3)

    def test_runs_at_once(self) -> None:
        """
        The coroutine runs up to its first wait before C{start_eagerly}
        returns, as under C{Deferred.fromCoroutine}.
        """
        steps: list[str] = []
        waiting: Deferred[str] = Deferred()

        async def coro() -> str:
            steps.append("started")
            value = await waiting
            steps.append(value)
            return value + "!"

        d = start_eagerly(coro())
        self.assertEqual(steps, ["started"])
        self.assertNoResult(d)
        waiting.callback("resumed")
        self.assertEqual(steps, ["started", "resumed"])
        self.assertEqual(self.successResultOf(d), "resumed!")

    def test_waits_more_than_once(self) -> None:
        """
        After its first wait, the coroutine is driven by Twisted to the end.
        """
        first: Deferred[int] = Deferred()
        second: Deferred[int] = Deferred()

        async def coro() -> int:
            return await first + await second

        d = start_eagerly(coro())
        first.callback(1)
        self.assertNoResult(d)
        second.callback(2)
        self.assertEqual(self.successResultOf(d), 3)

    def test_failure(self) -> None:
        """
        An exception, raised before or after a wait, fails the Deferred.
        """

        async def at_once() -> None:
            raise ValueError("at once")

        waiting: Deferred[None] = Deferred()

        async def later() -> None:
            await waiting
            raise KeyError("later")

        self.failureResultOf(start_eagerly(at_once()), ValueError)
        d = start_eagerly(later())
        waiting.callback(None)
        self.failureResultOf(d, KeyError)

    def test_cancel_while_waiting(self) -> None:
        """
        Cancelling the Deferred of a waiting coroutine cancels what it
        awaits: the coroutine sees C{CancelledError}.
        """
        waiting: Deferred[None] = Deferred()
        seen: list[str] = []

        async def coro() -> None:
            try:
                await waiting
            except CancelledError:
                seen.append("cancelled")
                raise

        d = start_eagerly(coro())
        d.cancel()
        self.assertEqual(seen, ["cancelled"])
        self.failureResultOf(d, CancelledError)

    def test_context_variables(self) -> None:
        """
        The coroutine runs in a copy of the caller's context variables: it
        sees what it set itself, before and after a wait, and the caller
        does not.
        """
        waiting: Deferred[None] = Deferred()
        seen: list[Any] = []

        async def coro() -> None:
            seen.append(_var.get())
            _var.set("inside")
            await waiting
            seen.append(_var.get())

        token = _var.set("caller")
        self.addCleanup(_var.reset, token)
        d = start_eagerly(coro())
        self.assertEqual(_var.get(), "caller")
        waiting.callback(None)
        self.successResultOf(d)
        self.assertEqual(seen, ["caller", "inside"])
        self.assertEqual(_var.get(), "caller")
