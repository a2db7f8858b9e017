# -*- test-case-name: txmsg.test.test_ops_metrics -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.ops.metrics}: collectors reading txmsg's counters, on fakes.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from twisted.application.service import MultiService
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp.publisher import Publisher
from txmsg.echo import EchoServerFactory
from txmsg.events import EventRegistry
from txmsg.ops.lag import ReactorLagMonitor
from txmsg.ops.metrics import (
    AMQPCollector,
    EventsCollector,
    RedisCollector,
    echo_registry,
    worker_registry,
)
from txmsg.ops.service import worker_checks
from txmsg.redis._delivery import Subscription
from txmsg.test._events_fakes import ThreadingClock
from txmsg.testing import MemoryBroker, SyncThreadPool
from txmsg.worker._stats import DurationHistogram, WorkerStats
from txmsg.worker.envelope import Task, encode_task
from txmsg.worker.retry import ATTEMPT_HEADER, RetryPolicy
from txmsg.worker.service import WorkerService
from txmsg.worker.tasks import TaskCatalog


def _registry(*collectors: Any) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


class DurationHistogramTests(SynchronousTestCase):
    """
    L{DurationHistogram} and L{WorkerStats} durations.
    """

    def test_buckets(self) -> None:
        """
        A value equal to a bound counts in that bound's bucket; values above
        the last bound go in the last (+Inf) bucket; sum and count add up.
        """
        h = DurationHistogram((0.1, 1.0))
        for value in (0.05, 0.1, 0.5, 3.0):
            h.observe(value)
        self.assertEqual(h.counts, [2, 1, 1])
        self.assertEqual((h.count, h.sum), (4, 3.65))

    def test_finished_with_queue(self) -> None:
        """
        L{WorkerStats.finished} with a queue records the run time under
        (queue, task); without one it records nothing.
        """
        clock = Clock()
        stats = WorkerStats(clock)
        task = Task("add", (), {}, "t1")
        stats.started(task)
        clock.advance(0.3)
        stats.finished(task, "work")
        stats.started(Task("add", (), {}, "t2"))
        stats.finished(Task("add", (), {}, "t2"))
        [(key, h)] = stats.durations.items()
        self.assertEqual((key, h.count, round(h.sum, 6)), (("work", "add"), 1, 0.3))
        self.assertEqual(stats.started_at, {})


class EchoCollectorTests(SynchronousTestCase):
    """
    Echo metrics from L{EchoServerFactory.snapshot}.
    """

    def test_connections_and_bytes(self) -> None:
        """
        Open connections, accepted connections and bytes in/out (open
        connections included) are exported.
        """
        clock = Clock()
        factory = EchoServerFactory(clock=clock)
        registry = echo_registry(factory, ReactorLagMonitor(reactor=clock))
        protos = []
        for _ in range(2):
            proto = factory.buildProtocol(None)
            proto.makeConnection(StringTransport())
            protos.append(proto)
        protos[0].dataReceived(b"hello")
        protos[1].dataReceived(b"abc")
        protos[1].connectionLost(Failure(ConnectionLost()))
        value = registry.get_sample_value
        self.assertEqual(value("txmsg_echo_connections_open"), 1)
        self.assertEqual(value("txmsg_echo_connections_total"), 2)
        self.assertEqual(value("txmsg_echo_bytes_total", {"direction": "in"}), 8)
        self.assertEqual(value("txmsg_echo_bytes_total", {"direction": "out"}), 8)
        self.assertEqual(value("txmsg_reactor_lag_seconds"), 0)
        self.assertIn(b"process_cpu_seconds_total", generate_latest(registry))


class EventsCollectorTests(SynchronousTestCase):
    """
    Events delivered and handler failures by event name.
    """

    def test_counts(self) -> None:
        """
        Each delivered event and each failing handler is counted by event
        name; an emit() nobody listens to is not.
        """
        clock = Clock()
        events = EventRegistry(reactor=clock)
        events.add("order.created", lambda e: None)
        events.add("order.created", lambda e: 1 / 0)
        events.dispatch("order.created")
        events.dispatch("order.created")
        events.emit("nobody.listens")
        clock.advance(0)
        self.flushLoggedErrors(ZeroDivisionError)
        value = _registry(EventsCollector(events)).get_sample_value
        self.assertEqual(value("txmsg_events_dispatched_total", {"event": "order.created"}), 2)
        self.assertEqual(value("txmsg_event_handler_failures_total", {"event": "order.created"}), 2)
        self.assertIsNone(value("txmsg_events_dispatched_total", {"event": "nobody.listens"}))

    def test_cardinality_cap(self) -> None:
        """
        Beyond C{max_names} event names, the least frequent are summed as
        C{<other>}.
        """
        events = SimpleNamespace(
            dispatch_counts={"a": 5, "b": 3, "c": 1, "d": 1}, failure_counts={}
        )
        value = _registry(EventsCollector(events, max_names=2)).get_sample_value
        self.assertEqual(value("txmsg_events_dispatched_total", {"event": "a"}), 5)
        self.assertEqual(value("txmsg_events_dispatched_total", {"event": "<other>"}), 2)
        self.assertIsNone(value("txmsg_events_dispatched_total", {"event": "c"}))


URL = "amqp://guest:secret@broker.example:5672/%2F"


class AMQPCollectorTests(SynchronousTestCase):
    """
    Connection state and publisher counters of an AMQP connection.
    """

    def test_publishes(self) -> None:
        """
        Publishes are counted as published, then confirmed, nacked, returned
        or failed (connection lost) as the broker settles them.
        """
        clock = Clock()
        broker = MemoryBroker(clock)
        broker.declare_queue("q")
        broker.hold_confirms()
        svc = broker.connection()
        publisher = Publisher(svc, timeout=None)
        value = _registry(AMQPCollector(svc)).get_sample_value
        self.assertEqual(value("txmsg_amqp_connected"), 0)
        conn = broker.connect(svc)
        self.assertEqual(
            (value("txmsg_amqp_connected"), value("txmsg_amqp_connections_total")),
            (1, 1),
        )
        # the third goes to a queue that does not exist: it is returned
        results = [publisher.publish("", key, b"x") for key in ("q", "q", "nowhere", "q")]
        broker.release_confirm(1)
        broker.release_confirm(2, nack=True)
        broker.release_confirm(3)
        self.assertEqual(value("txmsg_amqp_publishes_unconfirmed"), 1)
        conn.lose(ConnectionLost())
        for d in results[1:]:
            self.failureResultOf(d)
        self.assertEqual(value("txmsg_amqp_publishes_total"), 4)
        self.assertEqual(value("txmsg_amqp_publishes_confirmed_total"), 1)
        self.assertEqual(value("txmsg_amqp_publishes_nacked_total"), 1)
        self.assertEqual(value("txmsg_amqp_publishes_returned_total"), 1)
        self.assertEqual(value("txmsg_amqp_publishes_failed_total"), 1)
        self.assertEqual(value("txmsg_amqp_connected"), 0)


class RedisCollectorTests(SynchronousTestCase):
    """
    Redis connection state and subscription counters.
    """

    def test_state_and_subscriptions(self) -> None:
        """
        Each role's state and connection count is exported; messages are
        counted by subscription name and kind, summed over callbacks of the
        same name.
        """
        subs = [
            Subscription("news", lambda m: None),
            Subscription("news", lambda m: None),
            Subscription("orders.*", lambda m: None, is_pattern=True),
        ]
        subs[0].stats["received"] = 3
        subs[1].stats["received"] = 2
        subs[2].stats.update(received=7, dropped=1, decode_failures=2, callback_failures=4)
        redis = SimpleNamespace(
            connection=SimpleNamespace(state=SimpleNamespace(is_connected=True, connections=2)),
            pubsub=SimpleNamespace(
                state=SimpleNamespace(is_connected=False, connections=1),
                subscriptions=lambda: subs,
                stats={"unrouted": 9},
            ),
        )
        value = _registry(RedisCollector(redis)).get_sample_value
        self.assertEqual(value("txmsg_redis_connected", {"role": "commands"}), 1)
        self.assertEqual(value("txmsg_redis_connected", {"role": "pubsub"}), 0)
        self.assertEqual(value("txmsg_redis_connections_total", {"role": "commands"}), 2)
        self.assertEqual(
            value(
                "txmsg_redis_messages_received_total",
                {"subscription": "news", "kind": "channel"},
            ),
            5,
        )
        pattern = {"subscription": "orders.*", "kind": "pattern"}
        self.assertEqual(value("txmsg_redis_messages_received_total", pattern), 7)
        self.assertEqual(value("txmsg_redis_messages_dropped_total", pattern), 1)
        self.assertEqual(value("txmsg_redis_decode_failures_total", pattern), 2)
        self.assertEqual(value("txmsg_redis_callback_failures_total", pattern), 4)
        self.assertEqual(value("txmsg_redis_messages_unrouted_total"), 9)


class WorkerCollectorTests(SynchronousTestCase):
    """
    A real L{WorkerService} on the AMQP fakes: its metrics and readiness.
    """

    def setUp(self) -> None:
        self.pool = SyncThreadPool(hold=True)
        self.clock = ThreadingClock(self.pool)
        self.events = EventRegistry(reactor=self.clock)
        self.broker = MemoryBroker(self.clock)
        self.amqp = self.broker.connection(url=URL, events=self.events)
        self.amqp.setServiceParent(MultiService())
        tasks = TaskCatalog()
        tasks.add(lambda x, y: x + y, name="add")
        tasks.add(self.boom, name="boom", retry_for=(Exception,))
        self.worker = WorkerService(
            tasks,
            queues=["work"],
            name="w1",
            amqp=self.amqp,
            events=self.events,
            reactor=self.clock,
            threadpool=self.pool,
            retry=RetryPolicy(max_retries=1, initial_delay=1, jitter=0),
        )
        self.lag = ReactorLagMonitor(reactor=self.clock)
        self.registry = worker_registry(self.worker, self.lag)
        self.checks = worker_checks(self.worker)

    def boom(self) -> None:
        raise ZeroDivisionError("boom")

    def missing(self) -> list[str]:
        return [c.name for c in self.checks() if not c.ok]

    def connect(self) -> None:
        self.conn = self.broker.connect(self.amqp)
        self.clock.advance(0)
        [self.channel] = [c for c in self.conn.channels if c.consumer_tags]

    def deliver(self, body: bytes, **headers: Any) -> None:
        self.broker.publish(
            "",
            "work",
            body,
            content_type="application/json",
            delivery_mode=2,
            headers=headers or None,
        )
        for _ in range(10):  # deliveries, replies, retries and their confirms
            self.clock.advance(0)

    def test_outcomes_by_queue_and_task(self) -> None:
        """
        Successes, retries and dead letters are counted by queue, task and
        outcome (dead letters also by reason); durations feed the histogram;
        events and deliveries are counted too.
        """
        self.worker.startService()
        self.connect()
        self.deliver(encode_task(Task("add", (1, 2), {}, "a1")))
        self.deliver(encode_task(Task("boom", (), {}, "b1")))
        self.deliver(encode_task(Task("boom", (), {}, "b1")), **{ATTEMPT_HEADER: 1})
        self.deliver(encode_task(Task("nope", (), {}, "n1")))
        self.deliver(b"not json")
        self.flushLoggedErrors(ZeroDivisionError)
        value = self.registry.get_sample_value

        def tasks(task: str, outcome: str) -> Any:
            return value(
                "txmsg_worker_tasks_total",
                {"queue": "work", "task": task, "outcome": outcome},
            )

        def dead(task: str, reason: str) -> Any:
            return value(
                "txmsg_worker_dead_letters_total",
                {"queue": "work", "task": task, "reason": reason},
            )

        self.assertEqual(tasks("add", "succeeded"), 1)
        self.assertEqual(tasks("boom", "retried"), 1)
        self.assertEqual(tasks("boom", "dead_lettered"), 1)
        self.assertEqual(dead("boom", "failed"), 1)
        self.assertEqual(dead("<unknown>", "unknown-task"), 1)
        self.assertEqual(dead("<malformed>", "malformed"), 1)
        self.assertEqual(value("txmsg_worker_task_failures_total"), 2)
        labels = {"queue": "work", "task": "add"}
        self.assertEqual(value("txmsg_worker_task_duration_seconds_count", labels), 1)
        self.assertEqual(
            value("txmsg_worker_task_duration_seconds_bucket", dict(labels, le="0.005")),
            1,
        )
        self.assertEqual(
            value("txmsg_worker_task_duration_seconds_bucket", dict(labels, le="+Inf")),
            1,
        )
        self.assertEqual(value("txmsg_worker_tasks_in_flight"), 0)
        self.assertEqual(value("txmsg_events_dispatched_total", {"event": "task.boom"}), 2)
        self.assertEqual(value("txmsg_event_handler_failures_total", {"event": "task.boom"}), 2)
        self.assertEqual(
            value("txmsg_amqp_deliveries_total", {"queue": "work", "outcome": "acked"}),
            5,
        )
        self.assertEqual(value("txmsg_amqp_publishes_confirmed_total"), 4)
        self.assertEqual(value("txmsg_worker_state", {"state": "running"}), 1)

    def test_readiness(self) -> None:
        """
        The worker is ready only while running with a ready AMQP connection
        and an active consumer on every queue; a lost connection or a pause
        makes it not ready, naming what is missing.
        """
        self.assertEqual(self.missing(), ["worker", "amqp", "consumer:work"])
        self.worker.startService()
        self.assertEqual(self.missing(), ["amqp", "consumer:work"])
        self.connect()
        self.assertEqual(self.missing(), [])
        self.conn.lose(ConnectionLost())
        self.assertEqual(self.missing(), ["amqp", "consumer:work"])
        details = {c.name: c.detail for c in self.checks()}
        self.assertEqual(
            details["amqp"], "not connected to amqp://guest:***@broker.example:5672/%2F"
        )
        self.connect()
        self.assertEqual(self.missing(), [])

    def test_paused_keeps_counts(self) -> None:
        """
        Pausing makes the worker not ready; the acks of the consumer it
        stopped stay in the delivery counter.
        """
        self.worker.startService()
        self.connect()
        self.deliver(encode_task(Task("add", (1, 2), {}, "a1")))
        labels = {"queue": "work", "outcome": "acked"}
        self.assertEqual(self.registry.get_sample_value("txmsg_amqp_deliveries_total", labels), 1)
        self.worker._control_pause(None)
        self.clock.advance(0)
        self.assertEqual(self.missing(), ["worker", "consumer:work"])
        self.assertEqual(self.registry.get_sample_value("txmsg_amqp_deliveries_total", labels), 1)
        self.worker._control_resume(None)
        self.clock.advance(0)
        self.assertEqual(self.registry.get_sample_value("txmsg_amqp_deliveries_total", labels), 1)
