# -*- test-case-name: txmsg.test.test_redis_deadline -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis._deadline.DeadlineProxy}.
"""

from __future__ import annotations

from typing import Any

import txredisapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis._deadline import DeadlineProxy, RedisCommandTimeout


class FakeTarget:
    """
    Records calls; each command returns a Deferred the test fires.
    """

    def __init__(self) -> None:
        self.pipelining = False
        self.calls: list[tuple[str, tuple, dict]] = []
        self.pending: list[Deferred[Any]] = []
        self.cancelled: list[str] = []

    def _cmd(self, name: str, *args: Any, **kw: Any) -> Deferred[Any]:
        self.calls.append((name, args, kw))
        d: Deferred[Any] = Deferred(lambda d: self.cancelled.append(name))
        self.pending.append(d)
        return d

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *a, **kw: self._cmd(name, *a, **kw)


class FakeTransaction:
    """
    What txredisapi's multi() fires with: a connection to release.
    """

    def __init__(self) -> None:
        self.discarded = 0

    def discard(self) -> Deferred[None]:
        self.discarded += 1
        return succeed(None)


class DeadlineProxyTests(SynchronousTestCase):
    """
    Tests for L{DeadlineProxy}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.target = FakeTarget()
        self.proxy = DeadlineProxy(
            self.target, 5.0, self.clock, lambda: "redis://h:1/0 not connected"
        )

    def tearDown(self) -> None:
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_result_passes_through(self) -> None:
        """
        A reply before the deadline is the result; nothing stays scheduled.
        """
        d = self.proxy.get("k")
        self.target.pending[0].callback("v")
        self.assertEqual(self.successResultOf(d), "v")

    def test_timeout(self) -> None:
        """
        Without a reply, the command fails with L{RedisCommandTimeout} after
        the deadline, naming the command and the connection state, and the
        inner Deferred is cancelled.
        """
        d = self.proxy.get("k")
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        f = self.failureResultOf(d, RedisCommandTimeout)
        self.assertIn("GET", str(f.value))
        self.assertIn("not connected", str(f.value))
        self.assertEqual(self.target.cancelled, ["get"])

    def test_real_handler_while_down(self) -> None:
        """
        A command on a real txredisapi handler that has no connection (Redis
        down, reconnecting) fails after the deadline instead of waiting
        forever.
        """
        factory = txredisapi.RedisFactory(None, None, 1, isLazy=True, convertNumbers=False)
        proxy = DeadlineProxy(factory.handler, 2.0, self.clock)
        d = proxy.get("k")
        self.clock.advance(2.0)
        self.failureResultOf(d, RedisCommandTimeout)

    def test_blocking_pop_adds_own_timeout(self) -> None:
        """
        BLPOP's deadline is its own timeout plus the command deadline; with
        timeout 0 (wait forever, as asked) there is none.
        """
        d = self.proxy.blpop(["q"], timeout=10)
        self.clock.advance(14.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, RedisCommandTimeout)
        forever = self.proxy.brpop(["q"], 0)
        self.clock.advance(100)
        self.assertNoResult(forever)

    def test_multi_late_result_released(self) -> None:
        """
        A MULTI that gets its connection after the deadline fails the caller
        and then discards the transaction, so the pooled connection is not
        leaked.
        """
        d = self.proxy.multi()
        self.clock.advance(5)
        self.failureResultOf(d, RedisCommandTimeout)
        tx = FakeTransaction()
        self.target.pending[0].callback(tx)
        self.assertEqual(tx.discarded, 1)

    def test_multi_result_wrapped(self) -> None:
        """
        A MULTI in time fires with the transaction wrapped in a proxy, so its
        commands have deadlines too.
        """
        d = self.proxy.multi()
        inner = FakeTarget()
        self.target.pending[0].callback(inner)
        tx = self.successResultOf(d)
        self.assertIsInstance(tx, DeadlineProxy)
        self.assertIs(tx.target, inner)
        c = tx.commit()
        self.clock.advance(5)
        self.failureResultOf(c, RedisCommandTimeout)

    def test_pipelined_commands_no_deadline(self) -> None:
        """
        Commands queued while pipelining get no deadline; execute_pipeline
        does.
        """
        self.target.pipelining = True
        queued = self.proxy.set("k", "v")
        run = self.proxy.execute_pipeline()
        self.clock.advance(5)
        self.assertNoResult(queued)
        self.failureResultOf(run, RedisCommandTimeout)

    def test_argument_checks(self) -> None:
        """
        C{None}, C{True} and C{False} arguments raise C{TypeError} (txredisapi
        would store their text); floats are sent with C{repr}.
        """
        self.assertRaises(TypeError, self.proxy.set, "k", None)
        self.assertRaises(TypeError, self.proxy.set, "k", True)
        self.proxy.zadd("z", 1e-07, "m")
        self.assertEqual(self.target.calls[-1][1], ("z", "1e-07", "m"))
        self.target.pending[-1].callback(1)

    def test_disabled(self) -> None:
        """
        A timeout of 0 disables deadlines.
        """
        proxy = DeadlineProxy(self.target, 0, self.clock)
        d = proxy.get("k")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertNoResult(d)

    def test_plain_attributes(self) -> None:
        """
        Non-callable and private attributes are returned as they are.
        """
        self.assertIs(self.proxy.pipelining, False)
