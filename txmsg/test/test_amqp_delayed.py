# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.delayed}: the delay topology and delayed publishing,
on the in-memory broker and a C{Clock}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp import Queue
from txmsg.amqp.delay_levels import MAX_DELAY, decode
from txmsg.amqp.delayed import (
    DelayedDelivery,
    DelayTooLong,
    DelayTopologyFailed,
    strip_dead_letter_headers,
)
from txmsg.test._optional import fuzz
from txmsg.testing import memory_amqp

DAY = 86400.0


class Setup:
    """A started in-memory connection with a delayed delivery and a queue."""

    def __init__(self, start: float = 1000.0, **kw: Any) -> None:
        self.clock = Clock()
        self.clock.advance(start)
        self.amqp = memory_amqp(self.clock)
        self.broker = self.amqp.broker
        self.delays = DelayedDelivery(self.amqp, clock=self.clock, **kw)
        self.amqp.declare(Queue("q"))
        self.amqp.startService()
        self.clock.advance(0)

    def count(self, queue: str = "q") -> int:
        return self.broker.message_count(queue)


class DelayedDeliveryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.s = Setup()
        self.addCleanup(self.s.amqp.stopService)

    def test_topology(self) -> None:
        """
        25 level queues (TTL 100 ms doubling, each dead-lettering to the
        level below, level 0 to the deliver exchange), durable and lazy.
        """
        self.successResultOf(self.s.delays.declare())
        q = self.s.broker.queue("txmsg.delay.24")
        self.assertTrue(q.durable)
        self.assertEqual(
            q.arguments,
            {
                "x-queue-mode": "lazy",
                "x-message-ttl": 100 * 2**24,
                "x-dead-letter-exchange": "txmsg.delay.23",
            },
        )
        self.assertEqual(
            self.s.broker.queue("txmsg.delay.00").arguments["x-dead-letter-exchange"],
            "txmsg.delay.deliver",
        )
        self.assertEqual(len(self.s.broker.queue_names("txmsg.delay.[0-9]*")), 25)
        self.assertEqual(self.s.broker.exchange_type("txmsg.delay.deliver"), "topic")

    def test_quorum(self) -> None:
        """With C{queue_type="quorum"}: its own set of quorum levels, dead-lettering at-least-once."""
        delays = DelayedDelivery(self.s.amqp, queue_type="quorum")
        self.successResultOf(delays.declare())
        args = self.s.broker.queue("txmsg.delay.quorum.05").arguments
        self.assertEqual(
            (args["x-queue-type"], args["x-dead-letter-strategy"], args["x-overflow"]),
            ("quorum", "at-least-once", "reject-publish"),
        )
        self.assertEqual(args["x-message-ttl"], 3200)
        self.assertRaises(ValueError, DelayedDelivery, self.s.amqp, queue_type="stream")

    def test_delivered_on_time(self) -> None:
        """A message waits its delay in the broker, then lands in its queue."""
        d = self.s.delays.publish("q", b"hello", 2.5, headers={"x-app": 1})
        self.s.clock.advance(0)
        self.assertIsNone(self.successResultOf(d))
        self.s.clock.advance(2.49)
        self.assertEqual(self.s.count(), 0)
        self.s.clock.advance(0.01)
        [m] = self.s.broker.messages("q")
        self.assertEqual((m.body, m.headers["x-app"], m.properties.delivery_mode), (b"hello", 1, 2))

    def test_eta(self) -> None:
        """C{eta} is a time on the clock; one in the past is published straight to the queue."""
        self.s.delays.publish("q", b"later", eta=1003.0)
        self.s.delays.publish("q", b"now", eta=900.0)
        self.s.clock.advance(0)
        self.assertEqual([m.body for m in self.s.broker.messages("q")], [b"now"])
        self.s.clock.advance(2.99)
        self.assertEqual(self.s.count(), 1)
        self.s.clock.advance(0.01)
        self.assertEqual(self.s.count(), 2)

    def test_any_number_of_delays(self) -> None:
        """Distinct delays, published in any order, arrive in ETA order through the same levels."""
        for delay in (7.7, 0.1, 3600.0, 2.2, 0.5, 86400.0 * 30):
            self.s.delays.publish("q", str(delay).encode(), delay)
        self.s.clock.advance(0)
        for t in (0.1, 0.4, 1.7, 5.5, 3600 - 7.7, 86400.0 * 30 - 3600):
            self.s.clock.advance(t)
        self.assertEqual(
            [m.body for m in self.s.broker.messages("q")],
            [b"0.1", b"0.5", b"2.2", b"7.7", b"3600.0", b"2592000.0"],
        )
        self.assertEqual(
            sum(self.s.count(n) for n in self.s.broker.queue_names("txmsg.delay.*")), 0
        )

    def test_confirmed(self) -> None:
        """The Deferred fires only once the broker confirmed the publish."""
        self.successResultOf(self.s.delays.declare("q"))
        self.s.broker.hold_confirms()
        d = self.s.delays.publish("q", b"x", 1.0)
        self.s.clock.advance(0)
        self.assertNoResult(d)
        self.s.broker.release_confirms()
        self.s.clock.advance(0)
        self.assertIsNone(self.successResultOf(d))

    def test_errors(self) -> None:
        """Too long, nonsense delays and names fail the Deferred with the reason."""
        self.failureResultOf(self.s.delays.publish("q", b"x", MAX_DELAY + 1), DelayTooLong)
        self.failureResultOf(self.s.delays.publish("q", b"x", float("nan")), ValueError)
        self.failureResultOf(self.s.delays.publish("a.#", b"x", 1), ValueError)

    def test_refused_topology(self) -> None:
        """A level queue declared before with other arguments: the publish fails naming it."""
        self.s.amqp.declare(Queue("txmsg.delay.00", arguments={"x-message-ttl": 5}))
        self.s.clock.advance(0)
        d = self.s.delays.publish("q", b"x", 1.0)
        self.s.clock.advance(0)
        f = self.failureResultOf(d, DelayTopologyFailed)
        self.assertIn("txmsg.delay.00", str(f.value))
        self.flushLoggedErrors()

    def test_expiration_and_death_headers_removed(self) -> None:
        """
        A per-message expiration and the dead-letter history are dropped:
        RabbitMQ would discard a message whose C{x-death} names a level it
        is about to enter again as a dead-letter cycle.
        """
        history = [{"queue": "txmsg.delay.00", "reason": "expired", "count": 1}]
        d = self.s.delays.publish(
            "q",
            b"again",
            0.3,
            headers={"x-death": history, "x-first-death-queue": "txmsg.delay.00", "k": "v"},
            expiration="1",
        )
        self.s.clock.advance(0)
        self.successResultOf(d)
        self.s.clock.advance(0.3)
        [m] = self.s.broker.messages("q")
        self.assertEqual(m.headers["k"], "v")
        self.assertEqual(m.headers["x-death"][0]["count"], 1)
        self.assertEqual(strip_dead_letter_headers(None), None)

    def test_cycle_dropped_without_stripping(self) -> None:
        """The in-memory broker drops a dead-letter cycle, as RabbitMQ does."""
        self.successResultOf(self.s.delays.declare("q"))
        history = [{"queue": "txmsg.delay.00", "reason": "expired", "count": 1}]
        key = "0." * 23 + "1.1.q"
        self.s.broker.publish("txmsg.delay.01", key, b"x", headers={"x-death": history})
        self.s.clock.advance(0.3)
        self.assertEqual(self.s.count(), 0)

    def test_unroutable(self) -> None:
        """A message due for a queue that was deleted meanwhile is kept in C{.unroutable}."""
        self.s.delays.publish("q", b"orphan", 0.5)
        self.s.clock.advance(0)
        self.s.broker.delete_queue("q")
        self.s.clock.advance(0.5)
        [m] = self.s.broker.messages("txmsg.delay.unroutable")
        self.assertEqual(m.body, b"orphan")

    def test_before_connecting(self) -> None:
        """Published before the connection is up: declared and sent once it is."""
        clock = Clock()
        amqp = memory_amqp(clock)
        amqp.declare(Queue("q"))
        d = DelayedDelivery(amqp, clock=clock).publish("q", b"early", 1.0)
        amqp.startService()
        self.addCleanup(amqp.stopService)
        clock.advance(0)
        self.successResultOf(d)
        clock.advance(1.0)
        self.assertEqual(amqp.broker.message_count("q"), 1)


class ModelTests(SynchronousTestCase):
    """
    The arithmetic and the topology together, on the in-memory broker:
    whatever the delay, delivered no earlier than its ETA and well within
    a second after it.
    """

    @fuzz(
        lambda st: st.floats(min_value=0.1, max_value=30 * DAY),
        lambda st: st.floats(min_value=0, max_value=1000),
        examples=60,
    )
    def test_within_a_second(self, delay: float, start: float) -> None:
        s = Setup(start=start)
        try:
            s.delays.publish("q", b"x", delay)
            s.clock.advance(0)
            eta = start + delay
            s.clock.advance(max(0.0, eta - s.clock.seconds() - 0.001))
            self.assertEqual(s.count(), 0)
            s.clock.advance(0.001 + 0.1)
            self.assertEqual(s.count(), 1)
            [m] = s.broker.messages("q")
            n, queue = decode(m.routing_key)
            self.assertEqual(queue, "q")
            # It went through one level per set bit of its tick count.
            self.assertEqual(len(m.headers["x-death"]), bin(n).count("1"))
        finally:
            s.amqp.stopService()
            s.clock.advance(0)
