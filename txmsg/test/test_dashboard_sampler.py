# -*- test-case-name: txmsg.test.test_dashboard_sampler -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the dashboard's queue sampler, its figure sources and its
Prometheus collector.
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import generate_latest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from txmsg.ops.dashboard import (
    ManagementStats,
    PassiveDeclareStats,
    QueueSampler,
    StatsUnavailable,
    dashboard_registry,
)
from txmsg.ops.dashboard._sampler import is_work_queue
from txmsg.ops.dashboard._stats import QueueStats
from txmsg.test._dashboard_support import Broker


class PassiveDeclareTests(SynchronousTestCase):
    """
    L{PassiveDeclareStats} and L{QueueSampler} on the in-memory broker.
    """

    def setUp(self) -> None:
        self.b = Broker()
        self.addCleanup(self.b.stop)

    def test_sample(self) -> None:
        """
        Ready messages and consumers of each queue; a missing one is
        L{None} and does not hide the ones after it.
        """
        self.b.broker.publish("", "jobs", b"x")
        self.b.dead_letter("t1")
        d = Deferred.fromCoroutine(
            PassiveDeclareStats(self.b.amqp).sample(["jobs", "nope", "jobs.dead"])
        )
        self.b.settle()
        self.assertEqual(
            self.successResultOf(d),
            {
                "jobs": QueueStats(ready=1, consumers=0),
                "nope": None,
                "jobs.dead": QueueStats(ready=1, consumers=0),
            },
        )

    def test_sampler(self) -> None:
        """
        The sampler samples at start and every interval, finds queues from
        the workers, and records dead letters beside each work queue.
        """
        clock = self.b.clock
        workers = [{"name": "w1", "queues": ["jobs", "jobs.retry.1000ms"]}]
        sampler = QueueSampler(
            PassiveDeclareStats(self.b.amqp),
            workers=lambda: succeed(workers),
            interval=5.0,
            clock=clock,
            now=clock.seconds,
        )
        sampler.startService()
        self.addCleanup(sampler.stopService)
        self.b.settle()
        self.assertEqual(list(sampler.histories), ["jobs"])
        self.b.broker.publish("", "jobs", b"x")
        self.b.dead_letter("t1")
        clock.advance(5.0)
        self.b.settle()
        latest = sampler.histories["jobs"].latest
        assert latest is not None
        self.assertEqual((latest.time, latest.ready, latest.dead), (5.0, 1, 1))
        overview = sampler.overview()
        self.assertEqual(
            (overview["workers"], overview["error"], len(overview["queues"])), (workers, None, 1)
        )

    def test_sample_now_follows_a_running_one(self) -> None:
        """
        A sample asked for while one runs is taken after it.
        """
        calls: list[Deferred[Any]] = []

        class Slow:
            lists_queues = False

            def sample(self, queues: Any) -> Deferred[Any]:
                d: Deferred[Any] = Deferred()
                calls.append(d)
                return d

        sampler = QueueSampler(Slow(), queues=["q"], clock=self.b.clock)
        first = sampler.sample_now()
        second = sampler.sample_now()
        self.assertEqual(len(calls), 1)
        calls[0].callback({"q": QueueStats(1, 0)})
        self.successResultOf(first)
        self.assertNoResult(second)
        self.assertEqual(len(calls), 2)
        calls[1].callback({"q": QueueStats(2, 0)})
        self.successResultOf(second)
        self.assertEqual(sampler.histories["q"].latest.ready, 2)

    def test_errors_are_reported(self) -> None:
        """
        A failing roster or broker is named in C{error}; the old workers stay.
        """

        class Down:
            lists_queues = False

            def sample(self, queues: Any) -> Deferred[Any]:
                return fail(StatsUnavailable("RabbitMQ: not connected"))

        sampler = QueueSampler(
            Down(),
            queues=["q"],
            workers=lambda: fail(ConnectionError("no redis")),
            clock=self.b.clock,
        )
        sampler.workers = [{"name": "old"}]
        self.successResultOf(sampler.sample_now())
        self.assertEqual(sampler.error, "worker roster: no redis; RabbitMQ: not connected")
        self.assertEqual(sampler.workers, [{"name": "old"}])
        self.assertIsNone(sampler.sampled_at)

    def test_work_queues(self) -> None:
        """
        Dead-letter, retry, delay-level, reply and server-named queues are
        not work queues.
        """
        self.assertEqual(
            [
                n
                for n in [
                    "a",
                    "a.dead",
                    "a.retry.500ms",
                    "txmsg.delay.03",
                    "txmsg.delay.quorum.24",
                    "amq.gen-x",
                    "",
                    "a.retry",
                    "b.c",
                ]
                if is_work_queue(n)
            ],
            ["a", "a.retry", "b.c"],
        )


class ManagementStatsTests(SynchronousTestCase):
    """
    L{ManagementStats} with a fake HTTP client.
    """

    def stats(self, answer: Any) -> tuple[ManagementStats, list[Any]]:
        asked: list[Any] = []

        def fetch(url: str, headers: dict[str, str]) -> Deferred[Any]:
            asked.append((url, headers))
            return answer if isinstance(answer, Deferred) else succeed(answer)

        return ManagementStats("http://admin:s3cret@mq:15672/", "/", fetch=fetch), asked

    def test_queues(self) -> None:
        """
        One request lists every queue with ready, unacked, consumers and
        rates; credentials go in the Authorization header, not the URL.
        """
        rows = [
            {
                "name": "jobs",
                "messages_ready": 4,
                "messages_unacknowledged": 2,
                "consumers": 3,
                "message_stats": {"publish_details": {"rate": 1.5}, "ack_details": {"rate": 2}},
            },
            {"name": "jobs.dead", "messages_ready": 1},
            "junk",
        ]
        stats, asked = self.stats((200, json.dumps(rows).encode()))
        result = self.successResultOf(Deferred.fromCoroutine(stats.sample(["gone"])))
        self.assertEqual(result["jobs"], QueueStats(4, 3, 2, 1.5, 2.0))
        self.assertEqual(result["jobs.dead"], QueueStats(1, 0, 0))
        self.assertIsNone(result["gone"])
        url, headers = asked[0]
        self.assertEqual(
            url,
            "http://mq:15672/api/queues/%2F?columns=name,messages_ready,"
            "messages_unacknowledged,consumers,message_stats",
        )
        self.assertEqual(headers["Authorization"], "Basic YWRtaW46czNjcmV0")

    def test_failures_are_one_line_without_secrets(self) -> None:
        """
        An HTTP error, bad JSON or a connection failure is
        L{StatsUnavailable} naming the redacted URL.
        """
        for answer in ((401, b""), (200, b"{nope"), fail(ConnectionRefusedError("refused"))):
            stats, _ = self.stats(answer)
            f = self.failureResultOf(Deferred.fromCoroutine(stats.sample()), StatsUnavailable)
            self.assertIn("http://admin:***@mq:15672/", str(f.value))
            self.assertNotIn("s3cret", str(f.value))

    def test_bad_url(self) -> None:
        """
        Only http(s) URLs with a host are accepted.
        """
        self.assertRaises(ValueError, ManagementStats, "amqp://mq/", fetch=lambda u, h: None)


class QueueCollectorTests(SynchronousTestCase):
    """
    C{txmsg_queue_messages} and C{txmsg_queue_consumers}.
    """

    def test_metrics(self) -> None:
        """
        Each known queue's newest figures, by state; missing queues and
        unknown states are left out.
        """

        class Fixed:
            lists_queues = True

            def sample(self, queues: Any) -> Deferred[Any]:
                return succeed(
                    {"jobs": QueueStats(4, 2, 1), "jobs.dead": QueueStats(3, 0), "gone": None}
                )

        b = Broker()
        self.addCleanup(b.stop)
        sampler = QueueSampler(Fixed(), queues=["gone", "jobs"], clock=b.clock)
        self.successResultOf(sampler.sample_now())
        text = generate_latest(dashboard_registry(sampler)).decode()
        for line in (
            'txmsg_queue_messages{queue="jobs",state="ready"} 4.0',
            'txmsg_queue_messages{queue="jobs",state="unacked"} 1.0',
            'txmsg_queue_messages{queue="jobs",state="dead"} 3.0',
            'txmsg_queue_consumers{queue="jobs"} 2.0',
        ):
            self.assertIn(line, text.splitlines())
        self.assertNotIn('queue="gone"', text)
