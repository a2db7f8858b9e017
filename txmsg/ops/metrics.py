# -*- test-case-name: txmsg.test.test_ops_metrics -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Prometheus collectors that read txmsg's own counters at scrape time.

Nothing here adds work to a hot path: each collector holds a reference to a
running object (an echo factory, a worker, a connection) and turns its
counters into metric families when Prometheus scrapes.  Register them in a
per-service C{CollectorRegistry} (L{worker_registry}, L{echo_registry}),
never the global one, so that tests and embedded uses stay isolated.

Metric names are listed in C{docs/operations.md}.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from txmsg.ops.lag import ReactorLagMonitor

__all__ = [
    "AMQPCollector",
    "EchoCollector",
    "EventsCollector",
    "ReactorCollector",
    "RedisCollector",
    "WorkerCollector",
    "echo_registry",
    "worker_registry",
]

#: At most this many event names are exported; the rest are summed as C{<other>}.
MAX_EVENT_NAMES = 200

WORKER_STATES = ("starting", "running", "paused", "stopping", "stopped")


def _counter(name: str, doc: str, labels: list[str], rows: Any) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in rows:
        family.add_metric(list(key), value)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class ReactorCollector:
    """
    C{txmsg_reactor_lag_seconds} and C{txmsg_reactor_lag_max_seconds}.
    """

    def __init__(self, lag: ReactorLagMonitor) -> None:
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        """
        The lag of the last tick and the largest one seen.
        """
        yield _gauge("txmsg_reactor_lag_seconds", "How late the last reactor tick fired.", self.lag.lag)
        yield _gauge("txmsg_reactor_lag_max_seconds", "Largest reactor lag seen.", self.lag.max_lag)


class EchoCollector:
    """
    Connections and bytes of an L{txmsg.echo.EchoServerFactory}.
    """

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Metric]:
        """
        Read the factory's L{snapshot}.
        """
        s = self.factory.snapshot()
        yield _gauge("txmsg_echo_connections_open", "Echo connections open now.", s.connections_current)
        yield CounterMetricFamily(
            "txmsg_echo_connections", "Echo connections accepted.", value=s.connections_total
        )
        yield CounterMetricFamily(
            "txmsg_echo_rejected_connections", "Connections refused by the cap.", value=s.rejected
        )
        yield CounterMetricFamily(
            "txmsg_echo_idle_timeouts", "Connections closed for idling.", value=s.idle_timeouts
        )
        yield CounterMetricFamily(
            "txmsg_echo_backpressure_pauses", "Reads paused by a slow reader.", value=s.pauses
        )
        bytes_total = CounterMetricFamily(
            "txmsg_echo_bytes", "Bytes received and echoed.", labels=["direction"]
        )
        bytes_total.add_metric(["in"], s.bytes_in)
        bytes_total.add_metric(["out"], s.bytes_out)
        yield bytes_total


class EventsCollector:
    """
    Events delivered and handler failures of an L{txmsg.events.EventRegistry},
    by event name.
    """

    def __init__(self, registry: Any, max_names: int = MAX_EVENT_NAMES) -> None:
        self.registry = registry
        self.max_names = max_names

    def _rows(self, counts: dict[str, int]) -> list[tuple[tuple[str], int]]:
        items = sorted(counts.items(), key=lambda kv: -kv[1])
        rows = [((name,), n) for name, n in items[: self.max_names]]
        rest = sum(n for _, n in items[self.max_names :])
        if rest:
            rows.append((("<other>",), rest))
        return rows

    def collect(self) -> Iterator[Metric]:
        """
        Read C{dispatch_counts} and C{failure_counts}.
        """
        yield _counter(
            "txmsg_events_dispatched",
            "Events delivered to their handlers.",
            ["event"],
            self._rows(dict(self.registry.dispatch_counts)),
        )
        yield _counter(
            "txmsg_event_handler_failures",
            "Handler failures (timeouts included), by event.",
            ["event"],
            self._rows(dict(self.registry.failure_counts)),
        )


class AMQPCollector:
    """
    Connection state, publishes and deliveries of an
    L{txmsg.amqp.AMQPConnection}.

    Consumers are found among the connection's participants; the counts of a
    consumer that stopped (a paused worker) are kept, so counters never go
    backwards.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._seen: dict[int, tuple[Any, str]] = {}
        self._retired: dict[tuple[str, str], int] = {}

    def _consumers(self) -> list[tuple[Any, str]]:
        from txmsg.amqp.consumer import Consumer

        current = {}
        for p in list(getattr(self.connection, "_participants", [])):
            if isinstance(p, Consumer):
                # server-named queues get one label: their names are random
                queue = p._queue if isinstance(p._queue, str) else (p._queue.name or "<server-named>")
                current[id(p)] = (p, queue)
        for key, (consumer, queue) in list(self._seen.items()):
            if key not in current:
                del self._seen[key]
                for outcome, n in (("acked", consumer.acked), ("nacked", consumer.nacked)):
                    self._retired[(queue, outcome)] = self._retired.get((queue, outcome), 0) + n
        self._seen.update(current)
        return list(current.values())

    def collect(self) -> Iterator[Metric]:
        """
        Read the connection, its publishers and its consumers.
        """
        conn = self.connection
        yield _gauge("txmsg_amqp_connected", "1 while the AMQP connection is ready.", 1 if conn.connection is not None else 0)
        yield CounterMetricFamily(
            "txmsg_amqp_connections", "AMQP connections that became ready.", value=conn.generation
        )
        from txmsg.amqp.publisher import Publisher

        publishers = [p for p in list(getattr(conn, "_participants", [])) if isinstance(p, Publisher)]
        for field, doc in (
            ("published", "Messages published."),
            ("confirmed", "Publishes confirmed by the broker."),
            ("nacked", "Publishes nacked by the broker."),
            ("returned", "Mandatory publishes returned as unroutable."),
            ("failed", "Publishes lost with their connection or timed out."),
        ):
            name = "txmsg_amqp_publishes" if field == "published" else "txmsg_amqp_publishes_" + field
            yield CounterMetricFamily(name, doc, value=sum(getattr(p, field) for p in publishers))
        yield _gauge(
            "txmsg_amqp_publishes_unconfirmed",
            "Publishes waiting for the broker's confirm.",
            sum(p.unconfirmed for p in publishers),
        )
        consumers = self._consumers()
        counts = dict(self._retired)
        active: dict[str, int] = {}
        for consumer, queue in consumers:
            for outcome, n in (("acked", consumer.acked), ("nacked", consumer.nacked)):
                counts[(queue, outcome)] = counts.get((queue, outcome), 0) + n
            active[queue] = active.get(queue, 0) + (1 if consumer.consuming else 0)
        yield _counter(
            "txmsg_amqp_deliveries", "Deliveries settled, by queue and ack/nack.", ["queue", "outcome"], sorted(counts.items())
        )
        consuming = GaugeMetricFamily(
            "txmsg_amqp_consumers_active", "Broker consumers active, by queue.", labels=["queue"]
        )
        for queue, n in sorted(active.items()):
            consuming.add_metric([queue], n)
        yield consuming


class RedisCollector:
    """
    Connection state and subscriptions of a L{txmsg.redis.RedisService}.
    """

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def collect(self) -> Iterator[Metric]:
        """
        Read the two connection states and each subscription's stats.
        """
        states = [("commands", self.redis.connection.state), ("pubsub", self.redis.pubsub.state)]
        connected = GaugeMetricFamily("txmsg_redis_connected", "1 while the connection is usable.", labels=["role"])
        connections = CounterMetricFamily("txmsg_redis_connections", "Times the connection came up.", labels=["role"])
        for role, state in states:
            connected.add_metric([role], 1 if state.is_connected else 0)
            connections.add_metric([role], state.connections)
        yield connected
        yield connections
        rows: dict[str, dict[tuple[str, str], int]] = {
            "received": {},
            "dropped": {},
            "decode_failures": {},
            "callback_failures": {},
        }
        for sub in self.redis.pubsub.subscriptions():
            key = (sub.name, "pattern" if sub.is_pattern else "channel")
            for field, table in rows.items():
                table[key] = table.get(key, 0) + sub.stats.get(field, 0)
        labels = ["subscription", "kind"]
        yield _counter("txmsg_redis_messages_received", "Pub/sub messages received.", labels, sorted(rows["received"].items()))
        yield _counter("txmsg_redis_messages_dropped", "Messages dropped: the subscription's queue was full.", labels, sorted(rows["dropped"].items()))
        yield _counter("txmsg_redis_decode_failures", "Messages that could not be decoded.", labels, sorted(rows["decode_failures"].items()))
        yield _counter("txmsg_redis_callback_failures", "Subscription callbacks that failed.", labels, sorted(rows["callback_failures"].items()))
        yield CounterMetricFamily(
            "txmsg_redis_messages_unrouted",
            "Messages for which no subscription was found.",
            value=self.redis.pubsub.stats.get("unrouted", 0),
        )


class WorkerCollector:
    """
    Task outcomes, durations and state of a L{txmsg.worker.service.WorkerService}.
    """

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        """
        Read the worker's L{WorkerStats} and state.
        """
        worker = self.worker
        stats = worker.stats
        state = GaugeMetricFamily("txmsg_worker_state", "1 for the worker's current state.", labels=["state"])
        for name in WORKER_STATES:
            state.add_metric([name], 1 if worker.state == name else 0)
        yield state
        yield _gauge("txmsg_worker_tasks_in_flight", "Tasks running now.", len(stats.started_at))
        yield _counter(
            "txmsg_worker_tasks",
            "Deliveries handled, by queue, task and outcome (succeeded, retried, dead_lettered, requeued).",
            ["queue", "task", "outcome"],
            sorted(dict(stats.outcomes).items()),
        )
        yield _counter(
            "txmsg_worker_dead_letters",
            "Deliveries sent to the dead-letter queue, by queue, task and reason.",
            ["queue", "task", "reason"],
            sorted(dict(stats.dead_letter_reasons).items()),
        )
        for name, field, doc in (
            ("txmsg_worker_task_failures", "failed", "Task runs that failed (each attempt)."),
            ("txmsg_worker_task_timeouts", "timed_out", "Task runs cut short by their time limit."),
            ("txmsg_worker_tasks_cancelled", "cancelled", "Tasks cancelled over the control channel."),
            ("txmsg_worker_messages_malformed", "malformed", "Messages that were not valid tasks."),
            ("txmsg_worker_tasks_unknown", "unknown", "Tasks this worker does not know."),
        ):
            yield CounterMetricFamily(name, doc, value=getattr(stats, field))
        durations = HistogramMetricFamily(
            "txmsg_worker_task_duration_seconds", "How long task runs took.", labels=["queue", "task"]
        )
        for (queue, task), h in sorted(dict(stats.durations).items()):
            cumulative, buckets = 0, []
            for bound, n in zip(list(h.bounds) + [float("inf")], h.counts):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
            durations.add_metric([queue, task], buckets, sum_value=h.sum)
        yield durations


def _base_registry(lag: ReactorLagMonitor) -> CollectorRegistry:
    from prometheus_client import PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(ReactorCollector(lag))
    return registry


def echo_registry(factory: Any, lag: ReactorLagMonitor) -> CollectorRegistry:
    """
    A new registry with the process, reactor and echo metrics.
    """
    registry = _base_registry(lag)
    registry.register(EchoCollector(factory))
    return registry


def worker_registry(worker: Any, lag: ReactorLagMonitor) -> CollectorRegistry:
    """
    A new registry with the process, reactor, worker, events, AMQP and (when
    the worker has one) Redis metrics.
    """
    registry = _base_registry(lag)
    registry.register(WorkerCollector(worker))
    registry.register(EventsCollector(worker.events))
    registry.register(AMQPCollector(worker.amqp))
    if worker.redis is not None:
        registry.register(RedisCollector(worker.redis))
    return registry
