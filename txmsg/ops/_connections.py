# -*- test-case-name: txmsg.test.test_ops_metrics -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Collectors for txmsg's connections: AMQP (connection, publishers,
consumers) and Redis (connections, subscriptions).  Re-exported by
L{txmsg.ops.metrics}.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from txmsg.amqp.consumer import Consumer
from txmsg.amqp.publisher import Publisher


def _counter(name: str, doc: str, labels: list[str], rows: Any) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in rows:
        family.add_metric(list(key), value)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


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
        current = {}
        for p in list(getattr(self.connection, "_participants", [])):
            if isinstance(p, Consumer):
                # server-named queues get one label: their names are random
                queue = (
                    p._queue if isinstance(p._queue, str) else (p._queue.name or "<server-named>")
                )
                current[id(p)] = (p, queue)
        for key, (consumer, queue) in list(self._seen.items()):
            if key not in current:
                del self._seen[key]
                for outcome, n in (
                    ("acked", consumer.acked),
                    ("nacked", consumer.nacked),
                ):
                    self._retired[(queue, outcome)] = self._retired.get((queue, outcome), 0) + n
        self._seen.update(current)
        return list(current.values())

    def collect(self) -> Iterator[Metric]:
        """
        Read the connection, its publishers and its consumers.
        """
        conn = self.connection
        yield _gauge(
            "txmsg_amqp_connected",
            "1 while the AMQP connection is ready.",
            1 if conn.connection is not None else 0,
        )
        yield CounterMetricFamily(
            "txmsg_amqp_connections",
            "AMQP connections that became ready.",
            value=conn.generation,
        )
        publishers = [
            p for p in list(getattr(conn, "_participants", [])) if isinstance(p, Publisher)
        ]
        for field, doc in (
            ("published", "Messages published."),
            ("confirmed", "Publishes confirmed by the broker."),
            ("nacked", "Publishes nacked by the broker."),
            ("returned", "Mandatory publishes returned as unroutable."),
            ("failed", "Publishes lost with their connection or timed out."),
        ):
            name = (
                "txmsg_amqp_publishes" if field == "published" else "txmsg_amqp_publishes_" + field
            )
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
            "txmsg_amqp_deliveries",
            "Deliveries settled, by queue and ack/nack.",
            ["queue", "outcome"],
            sorted(counts.items()),
        )
        consuming = GaugeMetricFamily(
            "txmsg_amqp_consumers_active",
            "Broker consumers active, by queue.",
            labels=["queue"],
        )
        for queue, n in sorted(active.items()):
            consuming.add_metric([queue], n)
        yield consuming


_SUBSCRIPTION_COUNTERS = (
    ("received", "txmsg_redis_messages_received", "Pub/sub messages received."),
    (
        "dropped",
        "txmsg_redis_messages_dropped",
        "Messages dropped: the subscription's queue was full.",
    ),
    (
        "decode_failures",
        "txmsg_redis_decode_failures",
        "Messages that could not be decoded.",
    ),
    (
        "callback_failures",
        "txmsg_redis_callback_failures",
        "Subscription callbacks that failed.",
    ),
)


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
        states = [
            ("commands", self.redis.connection.state),
            ("pubsub", self.redis.pubsub.state),
        ]
        connected = GaugeMetricFamily(
            "txmsg_redis_connected",
            "1 while the connection is usable.",
            labels=["role"],
        )
        connections = CounterMetricFamily(
            "txmsg_redis_connections", "Times the connection came up.", labels=["role"]
        )
        for role, state in states:
            connected.add_metric([role], 1 if state.is_connected else 0)
            connections.add_metric([role], state.connections)
        yield connected
        yield connections
        rows: dict[str, dict[tuple[str, str], int]] = {f: {} for f, _, _ in _SUBSCRIPTION_COUNTERS}
        for sub in self.redis.pubsub.subscriptions():
            key = (sub.name, "pattern" if sub.is_pattern else "channel")
            for field, table in rows.items():
                table[key] = table.get(key, 0) + sub.stats.get(field, 0)
        for field, name, doc in _SUBSCRIPTION_COUNTERS:
            yield _counter(name, doc, ["subscription", "kind"], sorted(rows[field].items()))
        yield CounterMetricFamily(
            "txmsg_redis_messages_unrouted",
            "Messages for which no subscription was found.",
            value=self.redis.pubsub.stats.get("unrouted", 0),
        )
