# -*- test-case-name: txmsg.test.test_dashboard_sampler -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg_queue_messages{queue,state}} and C{txmsg_queue_consumers{queue}}
from a L{QueueSampler}'s newest samples (read at scrape time; nothing is
asked of the broker then).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric

__all__ = ["QueueCollector", "dashboard_registry"]


class QueueCollector:
    """
    Queue depth by state (C{ready}, C{unacked} when known, C{dead}: in the
    dead-letter queue) and consumers, per work queue.
    """

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def collect(self) -> Iterator[Metric]:
        """
        The newest sample of every queue that exists.
        """
        messages = GaugeMetricFamily(
            "txmsg_queue_messages",
            "Messages in a work queue by state (ready, unacked, dead), as last sampled.",
            labels=["queue", "state"],
        )
        consumers = GaugeMetricFamily(
            "txmsg_queue_consumers", "Consumers of a work queue, as last sampled.", labels=["queue"]
        )
        for name in sorted(self.sampler.histories):
            latest = self.sampler.histories[name].latest
            if latest is None or latest.ready is None:
                continue
            messages.add_metric([name, "ready"], latest.ready)
            if latest.unacked is not None:
                messages.add_metric([name, "unacked"], latest.unacked)
            if latest.dead is not None:
                messages.add_metric([name, "dead"], latest.dead)
            if latest.consumers is not None:
                consumers.add_metric([name], latest.consumers)
        yield messages
        yield consumers


def dashboard_registry(sampler: Any) -> CollectorRegistry:
    """
    A new registry with the process and queue metrics.
    """
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(QueueCollector(sampler))
    return registry
