# -*- test-case-name: txmsg.test.test_amqp_consumer -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.consumer}, on L{txmsg.testing.MemoryBroker}.
"""

from typing import Any

from pika import BasicProperties
from pika.exceptions import ConnectionClosedByBroker
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp._cancel import cancel_consumer
from txmsg.amqp.consumer import (
    AckWith,
    Consumer,
    ConsumerStopped,
    DeadLetter,
    Delivery,
    Disposition,
    DropMessage,
    ErrorPolicy,
    Publish,
    RetryLater,
)
from txmsg.amqp.topology import Queue
from txmsg.testing import MemoryBroker, RecordingEvents


class ConsumerFixture(SynchronousTestCase):
    """A L{Consumer} of queue C{work} on a memory broker connection."""

    def setUp(self):
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        self.broker.declare_queue("work")
        self.svc = self.broker.connection()
        self.seen = []
        self.pending: Any = []  # a list, or None for handlers that return None

    def handler(self, delivery):
        self.seen.append(delivery)
        if self.pending is None:
            return None
        d = Deferred()
        self.pending.append(d)
        return d

    def start(self, **kw):
        consumer = Consumer(self.svc, "work", kw.pop("handler", self.handler), **kw)
        conn = self.broker.connect(self.svc)
        ch = conn.channels[-1]
        return consumer, conn, ch

    def deliver(self, ch, body, **properties):
        """
        Publish C{body} to the C{work} queue and let the broker deliver it;
        returns the delivery tag it got on C{ch}, or L{None} if it is not
        delivered yet (the consumer's prefetch is full).
        """
        seen = len(ch.deliveries)
        self.broker.publish("", "work", body, **properties)
        self.clock.advance(0)
        if len(ch.deliveries) == seen:
            return None
        return ch.deliveries[-1].method.delivery_tag


class ConsumerTests(ConsumerFixture):
    """Tests for L{Consumer} on memory broker connections."""

    def test_qos_before_consume(self):
        """basic_qos(prefetch) is set before basic_consume, with manual acks."""
        consumer, conn, ch = self.start(prefetch=10)
        self.assertEqual([n for n, _ in ch.calls], ["basic_qos", "basic_consume"])
        self.assertEqual(ch.calls[0][1]["prefetch_count"], 10)
        self.assertFalse(ch.calls[1][1]["auto_ack"])
        self.assertTrue(consumer.consuming)

    def test_when_consuming(self):
        """when_consuming fires with the queue name once the consumer is active."""
        consumer = Consumer(self.svc, "work", self.handler)
        d = consumer.when_consuming()
        self.assertNoResult(d)
        self.broker.connect(self.svc)
        self.assertEqual(self.successResultOf(d), "work")
        self.assertEqual(self.successResultOf(consumer.when_consuming()), "work")

    def test_when_consuming_fails_on_stop(self):
        """
        A pending when_consuming fails with ConsumerStopped when the consumer
        stops first, and a call after the stop fails at once.
        """
        consumer = Consumer(self.svc, "work", self.handler)
        d = consumer.when_consuming()
        self.successResultOf(consumer.stop())
        self.failureResultOf(d, ConsumerStopped)
        self.failureResultOf(consumer.when_consuming(), ConsumerStopped)

    def test_when_consuming_cancel_and_timeout(self):
        """
        when_consuming can be cancelled, and fails with TimeoutError after
        its timeout; neither affects a later wait.
        """
        consumer = Consumer(self.svc, "work", self.handler)
        cancelled = consumer.when_consuming()
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        timed = consumer.when_consuming(timeout=5)
        self.clock.advance(5)
        self.failureResultOf(timed, TimeoutError)
        later = consumer.when_consuming()
        self.broker.connect(self.svc)
        self.assertEqual(self.successResultOf(later), "work")

    def test_stop_bounded_by_grace(self):
        """
        A handler that never finishes holds stop() for C{grace} seconds
        only; then the channel is closed (the broker requeues the delivery)
        and the late result is not acked.
        """
        consumer, conn, ch = self.start(grace=7)
        self.deliver(ch, b"1")
        stopped = consumer.stop()
        self.clock.advance(6)
        self.assertNoResult(stopped)
        self.assertTrue(ch.is_open)
        self.clock.advance(1)
        self.successResultOf(stopped)
        self.assertFalse(ch.is_open)
        self.pending[0].callback(None)
        self.assertEqual(ch.acks, [])
        self.clock.advance(0)
        self.assertEqual(self.broker.message_count("work"), 1)

    def test_ack_after_success(self):
        """The ack is sent only after the handler's Deferred succeeds, on the delivering channel."""
        consumer, conn, ch = self.start()
        tag = self.deliver(ch, b"hello")
        self.assertEqual(self.seen[0].body, b"hello")
        self.assertEqual(ch.acks, [])
        self.pending[0].callback(None)
        self.assertEqual(ch.acks, [])  # at the end of the turn
        self.clock.advance(0)
        self.assertEqual(ch.acks, [tag])

    def test_prefetch_one_handles_one_at_a_time(self):
        """With concurrency 1 the next delivery waits for the previous handler."""
        consumer, conn, ch = self.start()
        self.deliver(ch, b"1")
        self.deliver(ch, b"2")
        self.assertEqual(len(self.seen), 1)
        self.pending[0].callback(None)
        self.clock.advance(0)
        self.assertEqual(len(self.seen), 2)

    def test_coroutine_handler(self):
        """A coroutine handler's completion acks."""

        async def handler(delivery):
            await succeed(None)
            return None

        consumer, conn, ch = self.start(handler=handler)
        tag = self.deliver(ch, b"x")
        self.assertEqual(ch.acks, [tag])

    def test_sync_handler_many(self):
        """A synchronous handler drains a buffered batch without recursion."""
        self.pending = None
        consumer, conn, ch = self.start(prefetch=100)
        for _ in range(3000):
            self.broker.publish("", "work", b"x")
        self.clock.advance(0)
        self.clock.advance(0)
        tags = [d.method.delivery_tag for d in ch.deliveries]
        self.assertEqual(len(tags), 3000)
        # Those handled in one turn are acked together, with multiple acks.
        self.assertEqual(self.broker.acked, 3000)
        self.assertLess(len(ch.acks), 3000)
        self.assertEqual(self.broker.unacked_count("work"), 0)

    def test_failure_requeues_then_dead_letters(self):
        """A failing handler's delivery is requeued once, then dead-lettered when redelivered."""

        def handler(delivery):
            raise ValueError("boom")

        consumer, conn, ch = self.start(handler=handler)
        self.deliver(ch, b"x")  # nacked with requeue: the broker redelivers it
        first, again = ch.deliveries
        self.assertEqual((first.method.redelivered, again.method.redelivered), (False, True))
        t1, t2 = first.method.delivery_tag, again.method.delivery_tag
        self.assertEqual(ch.nacks, [(t1, True), (t2, False)])
        self.assertEqual(self.broker.message_count("work"), 0)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 2)

    def test_policy_dead_letter(self):
        """With ErrorPolicy.DEAD_LETTER a failure nacks without requeue."""
        consumer, conn, ch = self.start(handler=lambda d: 1 / 0, on_error=ErrorPolicy.DEAD_LETTER)
        t = self.deliver(ch, b"x")
        self.assertEqual(ch.nacks, [(t, False)])
        self.flushLoggedErrors(ZeroDivisionError)

    def test_explicit_decisions(self):
        """Handlers decide with sentinel exceptions or L{Disposition} values."""
        decisions = [
            RetryLater(),
            DeadLetter(),
            DropMessage(),
            Disposition.RETRY,
            Disposition.DEAD_LETTER,
            Disposition.DROP,
        ]

        def handler(delivery):
            if delivery.redelivered:  # a requeued one comes back: ack it
                return None
            d = decisions[int(delivery.body)]
            if isinstance(d, Exception):
                raise d
            return d

        consumer, conn, ch = self.start(handler=handler)
        for i in range(6):
            self.deliver(ch, str(i).encode())
        first = {d.method.delivery_tag: d.body for d in ch.deliveries if not d.method.redelivered}
        self.assertEqual(
            [(first.get(tag), requeue) for tag, requeue in ch.nacks],
            [(b"0", True), (b"1", False), (b"3", True), (b"4", False)],
        )
        self.assertEqual([first[tag] for tag in ch.acks if tag in first], [b"2", b"5"])

    def test_no_ack_on_stale_channel(self):
        """A handler finishing after a reconnect does not ack on any channel."""
        consumer, conn, ch = self.start()
        self.deliver(ch, b"x")
        conn.lose(ConnectionClosedByBroker(320, "CONNECTION_FORCED"))
        conn2 = self.broker.connect(self.svc)
        ch2 = conn2.channels[-1]
        self.pending[0].callback(None)
        self.assertEqual((ch.acks, ch2.acks, ch2.nacks), ([], [], []))
        self.assertTrue(consumer.consuming)

    def test_recreated_after_reconnect(self):
        """After a reconnect the consumer re-sets QoS and consumes again."""
        consumer, conn, ch = self.start(prefetch=5)
        conn.lose(ConnectionLost())
        self.assertFalse(consumer.consuming)
        conn2 = self.broker.connect(self.svc)
        ch2 = conn2.channels[-1]
        self.assertEqual([n for n, _ in ch2.calls], ["basic_qos", "basic_consume"])
        self.pending = None
        t = self.deliver(ch2, b"again")
        self.assertEqual(ch2.acks, [t])

    def test_channel_error_retries_after_delay(self):
        """A channel error (e.g. missing queue) recreates the consumer after retry_delay."""
        self.broker.delete_queue("work")  # consuming it: 404 NOT_FOUND
        consumer = Consumer(self.svc, "work", self.handler, retry_delay=2)
        conn = self.broker.connect(self.svc)
        self.clock.advance(0)
        self.assertFalse(consumer.consuming)
        self.assertEqual(conn.open_channels(), [])
        self.flushLoggedErrors()
        self.broker.declare_queue("work")
        self.clock.advance(2)
        self.assertTrue(consumer.consuming)
        self.assertEqual(len(conn.open_channels()), 1)

    def test_broker_cancel_closes_channel_and_recreates(self):
        """A broker cancel closes the channel (requeueing buffered deliveries) and re-consumes later."""
        consumer, conn, ch = self.start()
        self.deliver(ch, b"1")
        self.deliver(ch, b"2")
        self.broker.delete_queue("work")  # the broker cancels its consumers
        self.pending[0].callback(None)
        self.assertEqual(len(ch.acks), 1)
        self.assertFalse(ch.is_open)
        self.clock.advance(0)  # Channel.CloseOk
        self.broker.declare_queue("work")
        self.clock.advance(1)
        self.assertTrue(consumer.consuming)
        self.assertIsNot(conn.channels[-1], ch)

    def test_broker_cancel_waits_for_running_handlers(self):
        """
        After a broker cancel, the channel stays open until every handler
        that was running has settled: each of them is acked, none is
        redelivered; what was buffered behind them is not handled.
        """
        consumer, conn, ch = self.start(prefetch=3, concurrency=2)
        tags = [self.deliver(ch, b"%d" % n) for n in range(3)]
        self.assertEqual([d.body for d in self.seen], [b"0", b"1"])  # b"2" waits
        self.broker.delete_queue("work")
        self.assertTrue(ch.is_open)
        self.pending[1].callback(None)
        self.clock.advance(0)
        self.assertEqual((ch.acks, ch.is_open), ([tags[1]], True))
        self.pending[0].callback(None)
        self.assertEqual(sorted(ch.acks), sorted(tags[:2]))
        self.assertFalse(ch.is_open)
        self.assertEqual([d.body for d in self.seen], [b"0", b"1"])

    def test_broker_cancel_recreates_while_handlers_run(self):
        """
        After a broker cancel, a new consumer starts after C{retry_delay}
        on a new channel even while a handler of the old one still runs;
        the old channel settles that handler's delivery, then closes.
        """
        consumer, conn, ch = self.start(prefetch=2)
        old = self.deliver(ch, b"old")
        self.broker.delete_queue("work")
        self.broker.declare_queue("work")
        self.clock.advance(1)
        self.assertTrue(consumer.consuming)
        ch2 = conn.channels[-1]
        self.assertIsNot(ch2, ch)
        self.assertTrue(ch.is_open)
        new = self.deliver(ch2, b"new")
        self.pending[1].callback(None)
        self.pending[0].callback(None)
        self.clock.advance(0)
        self.assertEqual((ch.acks, ch2.acks), ([old], [new]))
        self.assertFalse(ch.is_open)
        self.assertTrue(ch2.is_open)

    def test_buffered_deliveries_in_order(self):
        """
        Deliveries that arrive while every handler slot is taken are
        handled in the order they arrived, one per freed slot.
        """
        consumer, conn, ch = self.start(prefetch=10, concurrency=2)
        for n in range(6):
            self.deliver(ch, b"%d" % n)
        self.assertEqual([d.body for d in self.seen], [b"0", b"1"])
        self.pending[0].callback(None)
        self.assertEqual([d.body for d in self.seen], [b"0", b"1", b"2"])
        for n in range(1, 4):
            self.pending[n].callback(None)
            self.assertEqual([d.body for d in self.seen], [b"%d" % m for m in range(n + 3)])
        for d in self.pending[4:]:
            d.callback(None)
        self.clock.advance(0)
        self.assertEqual(consumer.acked, 6)

    def test_deliveries_without_get(self):
        """
        Deliveries reach the handler without a C{get()} per delivery on the
        channel's queue: one C{get()} waits for the queue to close.
        """
        self.pending = None
        consumer, conn, ch = self.start(prefetch=5)
        queue = consumer._session.queue
        gets = []
        get = queue.get
        queue.get = lambda: gets.append(1) or get()
        for n in range(4):
            self.deliver(ch, b"%d" % n)
        self.assertEqual((len(self.seen), gets), (4, []))
        self.assertEqual(len(queue.waiting), 1)

    def test_server_named_queue_resolved(self):
        """A consumer of a server-named L{Queue} consumes the name the broker gave."""
        q = Queue.server_named()
        Consumer(self.svc, q, self.handler)
        conn = self.broker.connect(self.svc)
        consume = [kw for c in conn.channels for n, kw in c.calls if n == "basic_consume"]
        self.assertEqual(consume[0]["queue"], self.svc.topology.queue_name(q))

    def test_clean_stop(self):
        """stop waits for in-flight handlers and their acks, then closes the channel."""
        consumer, conn, ch = self.start(prefetch=2)
        t1 = self.deliver(ch, b"1")
        self.deliver(ch, b"2")
        self.deliver(ch, b"3")
        stopped = consumer.stop()
        self.assertNoResult(stopped)
        self.assertTrue(ch.is_open)
        self.pending[0].callback(None)
        self.assertNoResult(stopped)
        self.pending[1].callback(None)
        self.clock.advance(0)  # Channel.CloseOk
        self.successResultOf(stopped)
        self.assertEqual(len(self.seen), 2)
        # Both settled in one turn: one multiple ack (delivery 3 was never
        # handled and stays unacked, for the broker to requeue).
        acks = [kw for name, kw in ch.calls if name == "basic_ack"]
        self.assertEqual(acks, [{"delivery_tag": t1 + 1, "multiple": True}])
        self.assertEqual(self.broker.acked, 2)
        self.assertFalse(ch.is_open)
        self.assertEqual(ch.calls[-1][0], "close")

    def test_service_stop_order(self):
        """Stopping the service acks in-flight work before closing the connection."""
        consumer, conn, ch = self.start()
        t = self.deliver(ch, b"1")
        d = self.svc.stopService()
        self.assertEqual(conn.close_calls, 0)
        self.pending[0].callback(None)
        self.assertEqual(ch.acks, [t])
        self.clock.advance(0)  # Channel.CloseOk, then Connection.CloseOk
        self.assertEqual(conn.close_calls, 1)
        self.clock.advance(0)
        self.successResultOf(d)

    def test_service_stop_with_stuck_handler(self):
        """
        A handler that never finishes does not keep the connection service
        from stopping: its consumer's grace bounds the wait, then the
        connection is closed.
        """
        consumer, conn, ch = self.start(grace=30)
        self.deliver(ch, b"1")
        d = self.svc.stopService()
        self.clock.advance(29)
        self.assertNoResult(d)
        self.assertEqual(conn.close_calls, 0)
        self.clock.advance(1)
        self.assertEqual(conn.close_calls, 1)
        conn.lose(ConnectionLost())
        self.successResultOf(d)

    def test_events_dispatch(self):
        """Without a handler, deliveries are dispatched into the event registry."""
        events = RecordingEvents()
        self.svc.events = events
        Consumer(self.svc, "work", None, event_name="work.item")
        conn = self.broker.connect(self.svc)
        ch = conn.channels[-1]
        t = self.deliver(ch, b"payload")
        ((name, payload, source),) = [e for e in events.events if e[0] == "work.item"]
        self.assertEqual((payload.body, source), (b"payload", "amqp:work"))
        self.assertEqual(ch.acks, [t])

    def test_prefetch_must_be_positive(self):
        """prefetch 0 (unbounded) is refused."""
        self.assertRaises(ValueError, Consumer, self.svc, "q", self.handler, prefetch=0)


class TransactionalConsumerTests(SynchronousTestCase):
    """
    Tests for L{Consumer} with C{transactional=True}: the channel is in
    transaction mode, and a handler's L{AckWith} messages are published in
    the transaction of its ack.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        self.broker.declare_queue("work")
        self.broker.declare_queue("replies")
        self.svc = self.broker.connection()
        self.returned: list[Any] = []

    def start(self, handler: Any, **kw: Any) -> tuple[Consumer, Any]:
        consumer = Consumer(self.svc, "work", handler, transactional=True, **kw)
        conn = self.broker.connect(self.svc)
        return consumer, conn.channels[-1]

    def reply_handler(self, key: str) -> Any:
        def handler(delivery: Delivery) -> AckWith:
            return AckWith((Publish("", key, b"re:" + delivery.body, BasicProperties()),))

        return handler

    def test_tx_select_before_consume(self) -> None:
        """The channel is put in transaction mode before the consumer starts."""
        _, ch = self.start(lambda d: None)
        self.assertEqual([n for n, _ in ch.calls], ["basic_qos", "tx_select", "basic_consume"])

    def test_reply_and_ack_in_one_commit(self) -> None:
        """
        The reply is published, and the delivery acked, by one commit at
        the end of the turn: neither before it.
        """
        _, ch = self.start(self.reply_handler("replies"))
        self.broker.publish("", "work", b"q")
        self.broker.hold_replies("Tx.Commit")
        self.clock.advance(0)
        self.assertEqual([n for n, _ in ch.calls][-3:], ["basic_publish", "basic_ack", "tx_commit"])
        self.assertEqual([m.body for m in self.broker.messages("replies")], [b"re:q"])
        self.assertEqual(self.broker.unacked_count("work"), 0)

    def test_nothing_without_the_commit(self) -> None:
        """
        A connection lost before the commit applies neither: no reply, and
        the delivery goes back to the queue.
        """
        pending: list[Deferred[Any]] = []

        def handler(delivery: Delivery) -> Deferred[Any]:
            pending.append(Deferred())
            return pending[-1]

        _, ch = self.start(handler)
        self.broker.publish("", "work", b"q")
        self.clock.advance(0)
        pending[0].callback(AckWith((Publish("", "replies", b"r", BasicProperties()),)))
        ch._conn.lose(ConnectionLost())
        self.clock.advance(0)
        self.assertEqual(self.broker.messages("replies"), [])
        self.assertEqual(self.broker.message_count("work"), 1)

    def test_stop_waits_for_the_commit(self) -> None:
        """
        C{stop} closes the channel only once the last commit was answered,
        so what ran is not redelivered.
        """
        consumer, ch = self.start(self.reply_handler("replies"))
        self.broker.hold_replies("Tx.Commit")
        self.broker.publish("", "work", b"q")
        self.clock.advance(0)
        stopped = consumer.stop()
        self.clock.advance(0)
        self.assertNoResult(stopped)
        self.assertTrue(ch.is_open)
        self.broker.release_replies("Tx.Commit")
        self.clock.advance(0)
        self.successResultOf(stopped)
        self.assertFalse(ch.is_open)
        self.assertEqual(self.broker.message_count("work"), 0)

    def test_returned_reply_reported(self) -> None:
        """A reply to a queue that does not exist is returned to C{on_return}."""
        self.start(self.reply_handler("nowhere"), on_return=self.returned.append)
        self.broker.publish("", "work", b"q")
        self.clock.advance(0)
        [message] = self.returned
        self.assertEqual(message.method.routing_key, "nowhere")
        self.assertEqual(self.broker.unacked_count("work"), 0)

    def test_nacks_committed(self) -> None:
        """A failure's nack goes through the transaction too."""
        self.start(lambda d: 1 / 0, on_error=ErrorPolicy.DEAD_LETTER)
        self.broker.publish("", "work", b"q")
        self.clock.advance(0)
        self.flushLoggedErrors(ZeroDivisionError)
        self.assertEqual(self.broker.message_count("work"), 0)
        self.assertEqual(self.broker.unacked_count("work"), 0)

    def test_ack_with_needs_a_transaction(self) -> None:
        """
        L{AckWith} returned to a consumer that is not transactional is a
        handler failure (here dead-lettered): nothing is published or acked.
        """
        consumer = Consumer(
            self.svc, "work", self.reply_handler("replies"), on_error=ErrorPolicy.DEAD_LETTER
        )
        conn = self.broker.connect(self.svc)
        ch = conn.channels[-1]
        self.broker.publish("", "work", b"q")
        self.clock.advance(0)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        self.assertEqual(self.broker.messages("replies"), [])
        self.assertEqual(ch.acks, [])
        self.assertEqual(len(ch.nacks), 1)
        stopped = consumer.stop()
        self.clock.advance(0)
        self.successResultOf(stopped)


class MoveTests(ConsumerFixture):
    """
    L{Consumer.set_transactional}: moving a running consumer between a plain
    and a transactional channel.
    """

    def consumer_channels(self, conn: Any) -> list[Any]:
        return [c for c in conn.channels if c.consumer_tags and c.is_open]

    def test_move_with_handlers_running(self) -> None:
        """
        Handlers still running when the consumer moves settle on the old
        channel, which closes once they have; the new channel is
        transactional and its deliveries say so; nothing is redelivered.
        """
        consumer, conn, old = self.start(prefetch=5)
        for body in (b"a", b"b", b"c"):
            self.deliver(old, body)
        moved = consumer.set_transactional(True)
        self.clock.advance(0)
        self.successResultOf(moved)
        self.assertTrue(consumer.transactional)
        self.assertTrue(consumer.consuming)
        [new] = [c for c in self.consumer_channels(conn) if c is not old]
        self.assertIn("tx_select", [name for name, _ in new.calls])
        self.assertTrue(old.is_open)  # three handlers still running on it
        self.deliver(new, b"d")
        self.assertEqual(
            [(d.body, d.transactional) for d in self.seen],
            [(b"a", False), (b"b", False), (b"c", False), (b"d", True)],
        )
        for d in self.pending[:3]:
            d.callback(None)
        self.clock.advance(0)
        self.assertFalse(old.is_open)  # acked, then closed
        self.assertEqual(self.broker.unacked_count("work"), 1)
        self.pending[3].callback(None)
        self.clock.advance(0)
        self.assertEqual(self.broker.message_count("work"), 0)
        self.assertEqual(self.broker.unacked_count("work"), 0)
        self.assertFalse(any(d.redelivered for d in self.seen))

    def test_move_to_same_mode(self) -> None:
        """
        Asking for the mode the consumer is in changes nothing.
        """
        consumer, conn, ch = self.start()
        self.successResultOf(consumer.set_transactional(False))
        self.assertEqual(self.consumer_channels(conn), [ch])

    def test_connection_lost_while_moving(self) -> None:
        """
        A connection lost before the broker answered the cancel ends the
        move; after the reconnect the consumer consumes in the new mode.
        """
        consumer, conn, old = self.start(prefetch=5)
        self.broker.hold_replies("Basic.Cancel")
        moved = consumer.set_transactional(True)
        self.clock.advance(0)
        self.assertNoResult(moved)
        conn.lose(ConnectionClosedByBroker(320, "CONNECTION_FORCED"))
        self.successResultOf(moved)
        self.broker.release_replies()
        conn2 = self.broker.connect(self.svc)
        [channel] = self.consumer_channels(conn2)
        self.assertIn("tx_select", [name for name, _ in channel.calls])
        self.assertTrue(consumer.transactional)

    def test_stop_while_moving(self) -> None:
        """
        Stopping while a move waits for the broker's cancel-ok stops
        cleanly, and no new channel is opened.
        """
        consumer, conn, old = self.start(prefetch=5)
        self.broker.hold_replies("Basic.Cancel")
        consumer.set_transactional(True)
        self.clock.advance(0)
        channels = len(conn.channels)
        stopped = consumer.stop()
        self.broker.release_replies()
        self.clock.advance(0)
        self.successResultOf(stopped)
        self.assertEqual(len(conn.channels), channels)
        self.assertEqual(self.consumer_channels(conn), [])


class _PikaChannel:
    """pika's channel as far as L{cancel_consumer} sees it."""

    def __init__(self) -> None:
        self._cancelled: set[str] = set()


class _TwistedChannel:
    """pika's Twisted channel: C{basic_cancel} marks the tag cancelled."""

    def __init__(self, error: Exception | None = None) -> None:
        self._channel = _PikaChannel()
        self.error = error
        self.cancel_ok: Deferred[Any] = Deferred()

    def basic_cancel(self, tag: str) -> Deferred[Any]:
        if self.error is not None:
            raise self.error
        self._channel._cancelled.add(tag)
        return self.cancel_ok


class CancelConsumerTests(SynchronousTestCase):
    """
    L{cancel_consumer} keeps the deliveries that arrive before C{cancel-ok}.
    """

    def test_tag_not_left_cancelled(self) -> None:
        """
        The tag pika marks as cancelled when the cancel is sent is unmarked
        (so pika does not reject the deliveries still arriving), and the
        result fires at C{cancel-ok}.
        """
        channel = _TwistedChannel()
        d = cancel_consumer(channel, "ctag-1")
        self.assertEqual(channel._channel._cancelled, set())
        self.assertNoResult(d)
        channel.cancel_ok.callback("cancel-ok")
        self.assertEqual(self.successResultOf(d), "cancel-ok")

    def test_send_fails(self) -> None:
        """
        A channel that cannot send the cancel gives a failed Deferred, not
        an exception.
        """
        channel = _TwistedChannel(error=RuntimeError("channel closed"))
        self.failureResultOf(cancel_consumer(channel, "ctag-1"), RuntimeError)

    def test_other_channels(self) -> None:
        """
        A channel without pika's cancelled set (the memory fake's) is
        cancelled as it is; a plain result is wrapped in a Deferred.
        """

        class Plain:
            def basic_cancel(self, tag: str) -> str:
                return "ok " + tag

        self.assertEqual(self.successResultOf(cancel_consumer(Plain(), "t")), "ok t")
