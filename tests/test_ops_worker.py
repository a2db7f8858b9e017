# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: C{twistd -n txmsg-worker --health ...} scraped and probed
over real HTTP while real tasks flow through RabbitMQ.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import TestCase

from tests._amqp_support import (
    SHARED_URL,
    PrivateBroker,
    cleanup,
    require_broker,
    unique,
)
from tests._ops_support import get, metrics, run_plugin, submit, value, wait_until

TASKS = "tests._ops_tasks"


def _queues(queue: str) -> list[str]:
    return [queue, queue + ".dead"]


class WorkerMetricsTests(TestCase):
    """
    C{/metrics} and C{/ready} of a worker on the shared broker.
    """

    timeout = 120

    def setUp(self) -> None:
        require_broker()
        self.queue = unique("txmsg-ops")
        self.addCleanup(cleanup, _queues(self.queue))
        self.process, self.base = run_plugin(
            "txmsg-worker",
            ["--tasks", TASKS, "--queue", self.queue, "--amqp", SHARED_URL],
            "json",
        )
        self.addCleanup(self.process.cleanup)

    def ready(self) -> bool:
        return get(self.base + "/ready")[0] == 200

    def test_counters_move_as_tasks_flow(self) -> None:
        """
        Succeeded and dead-lettered tasks, their durations, deliveries,
        publishes and events all show up in the scrape, by queue and task.
        """
        wait_until(self.ready, 30, "/ready to answer 200")
        q = self.queue
        before = metrics(self.base)
        self.assertEqual(
            value(
                before,
                "txmsg_worker_tasks_total",
                queue=q,
                task="add",
                outcome="succeeded",
            ),
            0,
        )
        for i in range(5):
            submit(SHARED_URL, q, "add", i, 1)
        for _ in range(2):
            submit(SHARED_URL, q, "fail", "on purpose")

        def done() -> dict:
            samples = metrics(self.base)
            finished = (
                value(
                    samples,
                    "txmsg_worker_tasks_total",
                    queue=q,
                    task="add",
                    outcome="succeeded",
                )
                == 5
                and value(
                    samples,
                    "txmsg_worker_tasks_total",
                    queue=q,
                    task="fail",
                    outcome="dead_lettered",
                )
                == 2
            )
            return samples if finished else {}

        samples = wait_until(done, 30, "5 successes and 2 dead letters in /metrics")
        self.assertEqual(
            value(
                samples,
                "txmsg_worker_dead_letters_total",
                queue=q,
                task="fail",
                reason="failed",
            ),
            2,
        )
        self.assertEqual(
            value(samples, "txmsg_worker_task_duration_seconds_count", queue=q, task="add"),
            5,
        )
        self.assertEqual(
            value(
                samples,
                "txmsg_worker_task_duration_seconds_bucket",
                queue=q,
                task="add",
                le="+Inf",
            ),
            5,
        )
        self.assertEqual(value(samples, "txmsg_amqp_deliveries_total", queue=q, outcome="acked"), 7)
        self.assertGreaterEqual(value(samples, "txmsg_amqp_publishes_confirmed_total"), 2)
        self.assertEqual(value(samples, "txmsg_events_dispatched_total", event="task.add"), 5)
        self.assertEqual(value(samples, "txmsg_event_handler_failures_total", event="task.fail"), 2)
        self.assertEqual(value(samples, "txmsg_worker_tasks_in_flight"), 0)
        self.assertEqual(value(samples, "txmsg_amqp_connected"), 1)
        self.assertEqual(value(samples, "txmsg_worker_state", state="running"), 1)
        self.assertGreater(value(samples, "process_resident_memory_bytes"), 0)
        self.assertIn(("txmsg_reactor_lag_seconds", frozenset()), samples)
        code, body = get(self.base + "/live")
        self.assertEqual(code, 200)
        self.assertIn("reactor_lag_seconds", json.loads(body))

    def test_json_logs_redacted(self) -> None:
        """
        Every line of the JSON log is one JSON object; no line carries the
        broker password, even when a task logs a password-bearing URL as a
        field and inside its format string.
        """
        wait_until(self.ready, 30, "/ready to answer 200")
        secret_url = "redis://ops:Very-S3cret@cache.example:6379/0"
        submit(SHARED_URL, self.queue, "log_url", secret_url)
        wait_until(
            lambda: "Task connecting to" in self.process.log(),
            30,
            "the task's log lines",
        )
        status = self.process.terminate()
        self.process.assert_clean_stop(status)
        log = self.process.log()
        self.assertNotIn("Very-S3cret", log)
        self.assertNotIn("guest:guest", log)
        lines = [json.loads(line) for line in log.splitlines() if line.strip()]
        task_lines = [line for line in lines if line["namespace"] == "tests.ops"]
        self.assertEqual(len(task_lines), 2)
        for line in task_lines:
            self.assertEqual(
                line["message"],
                "Task connecting to redis://ops:***@cache.example:6379/0",
            )
        self.assertEqual(task_lines[0]["fields"]["url"], "redis://ops:***@cache.example:6379/0")
        connecting = [
            line for line in lines if line.get("format") == "Connecting to AMQP broker {url}"
        ]
        self.assertEqual(connecting[0]["fields"]["url"], "amqp://guest:***@127.0.0.1:5672/%2F")


class WorkerTextLogTests(TestCase):
    """
    The default text log is redacted too.
    """

    timeout = 60

    def test_text_logs_redacted(self) -> None:
        """
        A task logging a password-bearing URL leaves no password in the
        text log, which keeps twistd's usual line format.
        """
        require_broker()
        queue = unique("txmsg-ops")
        self.addCleanup(cleanup, _queues(queue))
        process, base = run_plugin(
            "txmsg-worker", ["--tasks", TASKS, "--queue", queue, "--amqp", SHARED_URL]
        )
        self.addCleanup(process.cleanup)
        wait_until(lambda: get(base + "/ready")[0] == 200, 30, "/ready to answer 200")
        submit(SHARED_URL, queue, "log_url", "amqps://ops:Very-S3cret@rabbit.example/vh")
        wait_until(
            lambda: process.log().count("Task connecting to") == 2,
            30,
            "the task's log lines",
        )
        log = process.log()
        self.assertNotIn("Very-S3cret", log)
        self.assertIn("[tests.ops#info] Task connecting to amqps://ops:***@rabbit.example/vh", log)


class WorkerReadinessTests(TestCase):
    """
    C{/ready} follows a private RabbitMQ node going away and coming back.
    """

    timeout = 240

    def test_ready_flips_with_the_broker(self) -> None:
        """
        /ready is 200 while connected and consuming, 503 naming the AMQP
        connection and the consumer while the broker is stopped (/live stays
        200), and 200 again once the broker is back.
        """
        broker = PrivateBroker()
        self.addCleanup(broker.stop)
        broker.start()
        queue = unique("txmsg-ops-ready")
        process, base = run_plugin(
            "txmsg-worker", ["--tasks", TASKS, "--queue", queue, "--amqp", broker.url]
        )
        self.addCleanup(process.cleanup)
        wait_until(lambda: get(base + "/ready")[0] == 200, 60, "/ready to answer 200")
        broker.ctl("stop_app")

        def not_ready() -> dict:
            code, body = get(base + "/ready")
            return json.loads(body) if code == 503 else {}

        payload = wait_until(not_ready, 60, "/ready to answer 503")
        self.assertIn("amqp", payload["missing"])
        self.assertIn("consumer:" + queue, payload["missing"])
        self.assertEqual(payload["status"], "not ready")
        self.assertFalse(payload["checks"]["amqp"]["ok"])
        self.assertEqual(get(base + "/live")[0], 200)
        self.assertEqual(value(metrics(base), "txmsg_amqp_connected"), 0)
        broker.ctl("start_app")
        wait_until(lambda: get(base + "/ready")[0] == 200, 90, "/ready to answer 200 again")
        samples = metrics(base)
        self.assertEqual(value(samples, "txmsg_amqp_connected"), 1)
        self.assertGreaterEqual(value(samples, "txmsg_amqp_connections_total"), 2)
        self.assertNotIn(broker.url.split("@")[0], process.log())
