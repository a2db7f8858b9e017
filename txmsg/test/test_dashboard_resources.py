# -*- test-case-name: txmsg.test.test_dashboard_resources -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for every resource of L{txmsg.ops.dashboard.DashboardRoot}, rendered
with C{DummyRequest} against the in-memory broker.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.error import UnsupportedMethod
from twisted.web.resource import Resource

from txmsg.ops.dashboard import (
    DashboardRoot,
    PassiveDeclareStats,
    QueueSampler,
    dashboard_registry,
)
from txmsg.test._dashboard_support import Broker, body, code, request

WORKER = {
    "name": "w<1>",
    "state": "running",
    "queues": ["jobs"],
    "running": [{"id": "r1", "task": "slow", "attempt": 1, "seconds": 2.0}],
    "counts": {"succeeded": 7, "failed": 1, "dead_lettered": 2, "retried": 3},
    "uptime": 12.0,
    "time": 0.0,
}
ORIGIN = {b"host": b"dash:8082", b"origin": b"http://dash:8082"}


class Fixture(SynchronousTestCase):
    """
    A dashboard on the in-memory broker with queue C{jobs}, two dead
    letters and one worker.
    """

    read_only = False
    results: Any = None

    def setUp(self) -> None:
        self.b = Broker()
        self.addCleanup(self.b.stop)
        self.b.dead_letter("t1")
        self.b.dead_letter("t2", reason="malformed")
        self.b.broker.publish("", "jobs", b"waiting")
        clock = self.b.clock
        self.sampler = QueueSampler(
            PassiveDeclareStats(self.b.amqp),
            workers=lambda: succeed([WORKER]),
            interval=5.0,
            clock=clock,
            now=clock.seconds,
        )
        self.sampler.startService()
        self.addCleanup(self.sampler.stopService)
        self.b.settle()
        self.root = DashboardRoot(
            self.sampler,
            self.b.amqp,
            read_only=self.read_only,
            results=self.results,
            registry=dashboard_registry(self.sampler),
            csrf_token="tok",
        )

    def get(self, path: bytes, **kw: Any) -> Any:
        return request(self.root, path, settle=self.b.settle, **kw)

    def post(self, path: bytes, args: dict[bytes, list[bytes]], **kw: Any) -> Any:
        kw.setdefault("headers", ORIGIN)
        return request(self.root, path, method=b"POST", args=args, settle=self.b.settle, **kw)


class PageTests(Fixture):
    """
    The HTML pages, their fragments and the JSON API.
    """

    def test_overview(self) -> None:
        """
        The overview lists the queue (ready, dead) and the worker (state,
        running task, counters), escaped, with the live part marked.
        """
        req = self.get(b"")
        html = body(req).decode()
        self.assertEqual(code(req), 200)
        self.assertIn('<base href="/">', html)
        self.assertIn('data-refresh="fragments/overview"', html)
        self.assertIn('<a href="queues/jobs">jobs</a>', html)
        self.assertIn('<td class="num ready">1</td>', html)
        self.assertIn('<td class="num dead hot">2</td>', html)
        self.assertIn("w&lt;1&gt;", html)
        self.assertNotIn("w<1>", html)
        self.assertIn('<a href="tasks/r1">slow r1</a>', html)
        self.assertIn('data-csrf="tok"', html)
        self.assertEqual(req.responseHeaders.getRawHeaders(b"x-frame-options"), [b"DENY"])

    def test_fragment_and_api(self) -> None:
        """
        The fragment is the live part alone; the API the same figures as JSON.
        """
        fragment = body(self.get(b"fragments/overview")).decode()
        self.assertTrue(fragment.startswith('<p class="status">'))
        self.assertNotIn("<html", fragment)
        api = json.loads(body(self.get(b"api/overview")))
        self.assertEqual(
            (api["queues"][0]["queue"], api["queues"][0]["ready"], api["workers"][0]["name"]),
            ("jobs", 1, "w<1>"),
        )
        self.assertEqual(json.loads(body(self.get(b"api/queues")))[0]["dead"], 2)

    def test_queue_page(self) -> None:
        """
        A queue page has its charts, figures and dead letters with their
        actions and the bulk ones.
        """
        html = body(self.get(b"queues/jobs")).decode()
        self.assertIn('data-src="api/queues/jobs/history"', html)
        self.assertIn("2 dead letter(s) in <code>jobs.dead</code>", html)
        self.assertIn('<a href="queues/jobs/dead/t1">add</a>', html)
        self.assertIn("ValueError: boom &lt;b&gt;", html)
        self.assertIn('action="queues/jobs/requeue"', html)
        self.assertIn("Requeue all", html)
        self.assertIn("Purge all", html)
        self.assertIn('data-refresh="fragments/queues/jobs"', html)
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 2)  # looking took none

    def test_queue_api_and_history(self) -> None:
        """
        The queue as JSON, with its dead letters; its history since a time.
        """
        api = json.loads(body(self.get(b"api/queues/jobs")))
        self.assertEqual(
            (api["dead_letters_total"], [d["key"] for d in api["dead_letters"]]), (2, ["t1", "t2"])
        )
        self.b.clock.advance(5.0)
        self.b.settle()
        history = json.loads(body(self.get(b"api/queues/jobs/history")))
        self.assertEqual([p["time"] for p in history["points"]], [0.0, 5.0])
        since = self.get(b"api/queues/jobs/history", args={b"since": [b"0"]})
        self.assertEqual([p["time"] for p in json.loads(body(since))["points"]], [5.0])
        self.assertEqual(code(self.get(b"api/queues/jobs/history", args={b"since": [b"x"]})), 400)

    def test_unknown_queue(self) -> None:
        """
        A queue the dashboard does not know is a 404.
        """
        self.assertEqual(code(self.get(b"queues/nope")), 404)
        self.assertEqual(code(self.get(b"api/queues/nope")), 404)

    def test_dead_letter_page(self) -> None:
        """
        One dead letter: its fields, headers and pretty body; unknown keys
        are 404.
        """
        html = body(self.get(b"queues/jobs/dead/t2")).decode()
        self.assertIn("malformed", html)
        self.assertIn("<th>x-txmsg-attempts</th>", html)
        self.assertIn("&quot;task&quot;: &quot;add&quot;", html)
        self.assertIn('name="next" value="queue"', html)
        api = json.loads(body(self.get(b"api/queues/jobs/dead/t2")))
        self.assertEqual((api["key"], api["reason"]), ("t2", "malformed"))
        self.assertEqual(code(self.get(b"queues/jobs/dead/zzz")), 404)
        self.assertEqual(code(self.get(b"api/queues/jobs/dead/zzz")), 404)

    def test_static_metrics_schedule(self) -> None:
        """
        The script and CSS come from the package; /metrics has the queue
        figures; the schedule page says there is none.
        """
        script = self.get(b"static/dashboard.js")
        self.assertIn(b"data-refresh", body(script))
        self.assertIn(b"svg.chart", body(self.get(b"static/dashboard.css")))
        metrics = body(self.get(b"metrics")).decode()
        self.assertIn('txmsg_queue_messages{queue="jobs",state="dead"} 2.0', metrics)
        self.assertIn("No schedule is configured", body(self.get(b"schedule")).decode())
        self.assertEqual(code(self.get(b"api/schedule")), 404)

    def test_mounted_under_a_path(self) -> None:
        """
        Mounted as a child, links are relative to the mount point, and the
        bare mount path redirects to it with a slash.
        """
        site = Resource()
        site.putChild(b"dashboard", self.root)
        html = body(request(site, b"dashboard/", settle=self.b.settle)).decode()
        self.assertIn('<base href="/dashboard/">', html)
        bare = request(site, b"dashboard", settle=self.b.settle)
        self.assertEqual(code(bare), 301)

    def test_task_without_results_store(self) -> None:
        """
        Without a results store the task page says so; the API is a 404.
        """
        self.assertIn("no results store", body(self.get(b"tasks/abc")).decode())
        self.assertIn("abc", body(self.get(b"tasks", args={b"id": [b"abc"]})).decode())
        self.assertEqual(code(self.get(b"tasks")), 400)
        self.assertEqual(code(self.get(b"api/tasks/abc")), 404)


class TaskPageTests(Fixture):
    """
    The task page with a results store.
    """

    def results(self, task_id: str) -> Any:
        return succeed({"id": task_id, "status": "ok", "result": 3} if task_id == "a" else None)

    def test_result(self) -> None:
        """
        A known task shows its record; an unknown one says so.
        """
        self.assertIn("&quot;ok&quot;", body(self.get(b"tasks/a")).decode())
        self.assertEqual(json.loads(body(self.get(b"api/tasks/a")))["result"], 3)
        self.assertIn("No result recorded", body(self.get(b"tasks/b")).decode())
        self.assertEqual(code(self.get(b"api/tasks/b")), 404)


class ActionTests(Fixture):
    """
    Requeue, delete and purge: POSTs with CSRF protection.
    """

    def test_requeue_one(self) -> None:
        """
        A form POST requeues the named dead letter and redirects back to the
        queue; the figures are sampled again at once.
        """
        req = self.post(b"queues/jobs/requeue", {b"key": [b"t1"], b"csrf": [b"tok"]})
        self.assertEqual(code(req), 303)
        self.assertEqual(req.responseHeaders.getRawHeaders(b"location"), [b"/queues/jobs"])
        self.assertEqual(self.b.broker.message_count("jobs"), 2)
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 1)
        latest = self.sampler.histories["jobs"].latest
        self.assertEqual((latest.ready, latest.dead), (2, 1))

    def test_requeue_all_json(self) -> None:
        """
        A script's POST (token in a header, JSON wanted) gets a JSON answer.
        """
        headers = {**ORIGIN, b"x-csrf-token": b"tok", b"accept": b"application/json"}
        unconfirmed = self.post(b"queues/jobs/requeue", {b"all": [b"1"]}, headers=headers)
        self.assertEqual(code(unconfirmed), 400)
        req = self.post(
            b"queues/jobs/requeue", {b"all": [b"1"], b"confirmed": [b"1"]}, headers=headers
        )
        self.assertEqual(
            json.loads(body(req)), {"ok": True, "message": "requeued 2 dead letter(s) of jobs"}
        )
        self.assertEqual(self.b.broker.message_count("jobs"), 3)

    def test_delete_and_purge(self) -> None:
        """
        Delete takes keys; purge needs C{all=1}.
        """
        self.post(b"queues/jobs/delete", {b"key": [b"t2"], b"csrf": [b"tok"]})
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 1)
        self.assertEqual(code(self.post(b"queues/jobs/purge", {b"csrf": [b"tok"]})), 400)
        self.assertEqual(
            code(self.post(b"queues/jobs/delete", {b"csrf": [b"tok"], b"all": [b"1"]})), 400
        )
        ask = self.post(b"queues/jobs/purge", {b"all": [b"1"], b"csrf": [b"tok"]})
        self.assertIn("Yes, delete them all", body(ask).decode())
        self.assertIn('name="confirmed" value="1"', body(ask).decode())
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 1)
        self.post(b"queues/jobs/purge", {b"all": [b"1"], b"confirmed": [b"1"], b"csrf": [b"tok"]})
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 0)

    def test_gone_dead_letter(self) -> None:
        """
        Requeueing a dead letter someone else handled is a 404.
        """
        req = self.post(b"queues/jobs/requeue", {b"key": [b"zzz"], b"csrf": [b"tok"]})
        self.assertEqual(code(req), 404)

    def test_cross_site_post_refused(self) -> None:
        """
        A POST from another site, or without the token, is refused with 403
        and changes nothing.
        """
        evil = {b"host": b"dash:8082", b"origin": b"http://evil.example"}
        for headers, args in (
            (evil, {b"key": [b"t1"], b"csrf": [b"tok"]}),
            (ORIGIN, {b"key": [b"t1"]}),
            (ORIGIN, {b"key": [b"t1"], b"csrf": [b"guess"]}),
        ):
            req = self.post(b"queues/jobs/requeue", args, headers=headers)
            self.assertEqual(code(req), 403)
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 2)

    def test_get_is_not_an_action(self) -> None:
        """
        Actions are POSTs only (the site answers 405).
        """
        self.assertRaises(
            UnsupportedMethod, self.get, b"queues/jobs/requeue", args={b"all": [b"1"]}
        )
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 2)


class ReadOnlyTests(Fixture):
    """
    C{read_only}: no buttons, every action refused.
    """

    read_only = True

    def test_read_only(self) -> None:
        """
        The pages show no action; a POST with a good token is still 403.
        """
        html = body(self.get(b"queues/jobs")).decode()
        self.assertNotIn('<form class="action"', html)
        self.assertIn("read-only", body(self.get(b"")).decode())
        req = self.post(
            b"queues/jobs/purge", {b"all": [b"1"], b"confirmed": [b"1"], b"csrf": [b"tok"]}
        )
        self.assertEqual(code(req), 403)
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 2)
