# -*- test-case-name: txmsg.test.test_dashboard_schedule -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the dashboard's schedule page (L{txmsg.ops.dashboard._schedule}).
"""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.ops.dashboard import DashboardRoot
from txmsg.ops.dashboard._schedule import schedule_view
from txmsg.redis._common import handler_of
from txmsg.schedule.leader import schedule_keys
from txmsg.test._dashboard_support import Broker, body, code, request
from txmsg.test._schedule_sample import schedule
from txmsg.testing import MemoryRedis


class SchedulePageTests(SynchronousTestCase):
    """
    Entries with their last firing from Redis, their next one and the
    leader.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = MemoryRedis(self.clock).service()
        self.redis.startService()
        self.addCleanup(self.redis.stopService)
        self.clock.advance(0)
        # what a leading scheduler leaves (written directly: the lease's own
        # scripts need Lua, an optional extra of the in-memory Redis)
        leader, _, covered = schedule_keys("default")
        handler = handler_of(self.redis)
        self.successResultOf(handler.set(leader, "sched-1|7"))
        self.successResultOf(handler.hset(covered, "fast", "1000.0"))
        self.b = Broker(self.clock)
        self.addCleanup(self.b.stop)

    def test_view(self) -> None:
        """
        Each entry: its description, task, queue, last and next firing.
        """
        view = self.successResultOf(schedule_view(schedule, self.redis, now=lambda: 1000.5)())
        self.assertEqual((view["leader"], view["error"]), ("sched-1", None))
        fast = [e for e in view["entries"] if e["name"] == "fast"][0]
        self.assertEqual(
            (fast["when"], fast["task"], fast["queue"], fast["last"], fast["next"]),
            ("every 1s", "ping", "pings", 1000.0, 1001.0),
        )
        nightly = [e for e in view["entries"] if e["name"] == "nightly"][0]
        self.assertIsNone(nightly["last"])

    def test_without_redis(self) -> None:
        """
        Without Redis, last firings and the leader are unknown.
        """
        view = self.successResultOf(schedule_view(schedule)())
        self.assertEqual({e["last"] for e in view["entries"]}, {None})
        self.assertIsNone(view["leader"])

    def test_page_and_api(self) -> None:
        """
        The page lists the entries; the API returns the same as JSON.
        """
        root = DashboardRoot(
            _NoSampler(),
            self.b.amqp,
            schedule=schedule_view(schedule, self.redis),
        )
        html = body(request(root, b"schedule", settle=self.b.settle)).decode()
        self.assertIn("leader: <code>sched-1</code>", html)
        self.assertIn("<td>fast</td><td>every 1s catch-up</td><td>ping</td><td>pings</td>", html)
        api = request(root, b"api/schedule", settle=self.b.settle)
        self.assertEqual(code(api), 200)
        self.assertEqual(
            sorted(e["name"] for e in json.loads(body(api))["entries"]), ["fast", "nightly"]
        )


class _NoSampler:
    interval = 5.0
    histories: dict[str, object] = {}
