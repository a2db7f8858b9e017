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

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from txmsg.echo import EchoServerFactory
from txmsg.ops._connections import AMQPCollector, RedisCollector, _counter, _gauge
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
        yield _gauge(
            "txmsg_reactor_lag_seconds",
            "How late the last reactor tick fired.",
            self.lag.lag,
        )
        yield _gauge(
            "txmsg_reactor_lag_max_seconds",
            "Largest reactor lag seen.",
            self.lag.max_lag,
        )


class EchoCollector:
    """
    Connections and bytes of an L{txmsg.echo.EchoServerFactory}.
    """

    def __init__(self, factory: EchoServerFactory) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Metric]:
        """
        Read the factory's L{snapshot}.
        """
        s = self.factory.snapshot()
        yield _gauge(
            "txmsg_echo_connections_open",
            "Echo connections open now.",
            s.connections_current,
        )
        yield CounterMetricFamily(
            "txmsg_echo_connections",
            "Echo connections accepted.",
            value=s.connections_total,
        )
        yield CounterMetricFamily(
            "txmsg_echo_rejected_connections",
            "Connections refused by the cap.",
            value=s.rejected,
        )
        yield CounterMetricFamily(
            "txmsg_echo_idle_timeouts",
            "Connections closed for idling.",
            value=s.idle_timeouts,
        )
        yield CounterMetricFamily(
            "txmsg_echo_backpressure_pauses",
            "Reads paused by a slow reader.",
            value=s.pauses,
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
        state = GaugeMetricFamily(
            "txmsg_worker_state", "1 for the worker's current state.", labels=["state"]
        )
        for name in WORKER_STATES:
            state.add_metric([name], 1 if worker.state == name else 0)
        yield state
        yield _gauge("txmsg_worker_tasks_in_flight", "Tasks running now.", len(stats.started_at))
        yield _counter(
            "txmsg_worker_tasks",
            "Deliveries handled, by queue, task and outcome "
            "(succeeded, retried, dead_lettered, requeued).",
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
            (
                "txmsg_worker_task_failures",
                "failed",
                "Task runs that failed (each attempt).",
            ),
            (
                "txmsg_worker_task_timeouts",
                "timed_out",
                "Task runs cut short by their time limit.",
            ),
            (
                "txmsg_worker_tasks_cancelled",
                "cancelled",
                "Tasks cancelled over the control channel.",
            ),
            (
                "txmsg_worker_messages_malformed",
                "malformed",
                "Messages that were not valid tasks.",
            ),
            (
                "txmsg_worker_tasks_unknown",
                "unknown",
                "Tasks this worker does not know.",
            ),
        ):
            yield CounterMetricFamily(name, doc, value=getattr(stats, field))
        durations = HistogramMetricFamily(
            "txmsg_worker_task_duration_seconds",
            "How long task runs took.",
            labels=["queue", "task"],
        )
        for (queue, task), h in sorted(dict(stats.durations).items()):
            cumulative, buckets = 0, []
            for bound, n in zip(list(h.bounds) + [float("inf")], h.counts, strict=True):
                cumulative += n
                buckets.append(
                    (
                        "+Inf" if bound == float("inf") else repr(float(bound)),
                        cumulative,
                    )
                )
            durations.add_metric([queue, task], buckets, sum_value=h.sum)
        yield durations


def _base_registry(lag: ReactorLagMonitor) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(ReactorCollector(lag))
    return registry


def echo_registry(factory: EchoServerFactory, lag: ReactorLagMonitor) -> CollectorRegistry:
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
    if worker.amqp is not None:  # None on Redis Streams
        registry.register(AMQPCollector(worker.amqp))
    if worker.redis is not None:
        registry.register(RedisCollector(worker.redis))
    return registry


def scheduler_registry(amqp: Any, redis: Any, lag: ReactorLagMonitor) -> CollectorRegistry:
    """
    A new registry with the process, reactor, AMQP and (when given) Redis
    metrics of a scheduler.
    """
    registry = _base_registry(lag)
    registry.register(AMQPCollector(amqp))
    if redis is not None:
        registry.register(RedisCollector(redis))
    return registry
