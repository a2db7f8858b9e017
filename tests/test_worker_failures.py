# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: poison messages and failing tasks end in the dead-letter
queue with the right headers after the right number of attempts, and the
C{twistd -n txmsg-worker} process keeps running.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import TestCase

from tests._streams_support import RedisBroker
from tests._worker_support import (
    AMQPBroker,
    WorkerProcess,
    unique,
    wait_until,
)
from txmsg.worker.retry import RetryPolicy

RETRY = RetryPolicy(max_retries=2, initial_delay=0.2)


class PoisonMessageTests(AMQPBroker, TestCase):
    """
    Malformed messages, unknown tasks and always-failing tasks.
    """

    timeout = 90

    def setUp(self) -> None:
        self.require()
        self.queue = unique("txmsg-worker-poison")
        self.addCleanup(self.delete_queues, [self.queue], RETRY)
        self.client = self.make_client()
        self.addCleanup(self.client.close)
        self.worker = WorkerProcess(
            [self.queue],
            "--max-retries",
            "2",
            "--retry-delay",
            "0.2",
            tasks="examples.worker_tasks",
            broker_args=self.broker_args(),
        )
        self.addCleanup(self.worker.cleanup)
        self.worker.start()

    def dead_letters(self, n: int) -> dict[bytes, dict]:
        dead = self.queue + ".dead"
        wait_until(lambda: self.client.count(dead) >= n, 30, "{} dead letters".format(n))
        letters = self.client.get_all(dead)
        self.assertEqual(len(letters), n, [b for _, b in letters])
        return {body: properties.headers for properties, body in letters}

    def test_poison_messages_are_dead_lettered(self) -> None:
        """
        Invalid JSON, a non-JSON content type, a JSON non-object and an
        unknown task go to C{<q>.dead} at once (reason C{malformed} or
        C{unknown-task}, no retries); a task that always raises runs 1 + 2
        times (C{--max-retries 2}), passing through the delay queues, and
        then goes to C{<q>.dead} with reason C{failed}, the error type,
        message, a traceback summary and C{x-txmsg-attempts: 3}.  Callers
        that asked for a reply get an error reply.  The worker runs on and
        still runs good tasks, and stops cleanly.
        """
        c = self.client
        c.publish_raw(self.queue, b"{not json", content_type="application/json")
        c.publish_raw(self.queue, b'{"task": "add"}', content_type="text/plain")
        c.publish_raw(self.queue, b"[1, 2]", content_type="application/json")
        unknown = c.submit(self.queue, "no_such_task", 1)
        failing = c.submit(self.queue, "fail", "boom")
        good = c.submit(self.queue, "add", 2, 3)

        letters = self.dead_letters(5)
        malformed = [
            letters[b"{not json"],
            letters[b'{"task": "add"}'],
            letters[b"[1, 2]"],
        ]
        for headers in malformed:
            self.assertEqual(headers["x-txmsg-reason"], "malformed")
            self.assertEqual(headers["x-txmsg-error-type"], "MalformedTask")
            self.assertEqual(headers["x-txmsg-queue"], self.queue)
            self.assertNotIn("x-txmsg-attempts", headers)
        self.assertIn("not valid JSON", malformed[0]["x-txmsg-error-message"])
        self.assertIn("content type", malformed[1]["x-txmsg-error-message"])
        self.assertIn("not an object", malformed[2]["x-txmsg-error-message"])

        by_task = {
            json.loads(body)["task"]: h for body, h in letters.items() if body.startswith(b'{"')
        }
        self.assertEqual(by_task["no_such_task"]["x-txmsg-reason"], "unknown-task")
        self.assertIn("no_such_task", by_task["no_such_task"]["x-txmsg-error-message"])
        self.assertNotIn("x-death", by_task["no_such_task"])  # never went through a delay queue

        failed = by_task["fail"]
        self.assertEqual(failed["x-txmsg-reason"], "failed")
        self.assertEqual(failed["x-txmsg-error-type"], "TaskFailed")
        self.assertEqual(failed["x-txmsg-error-message"], "boom")
        self.assertEqual(failed["x-txmsg-attempts"], 3)
        self.assertIn("TaskFailed: boom", failed["x-txmsg-traceback"])
        self.assertIn("worker_tasks.py", failed["x-txmsg-traceback"])
        if self.broker == "amqp":
            # Its last wait (400 ms, 4 ticks) was in delay level 2; the history
            # of the first retry was dropped when it was republished (RabbitMQ
            # would otherwise see a dead-letter cycle).
            self.assertEqual([d["queue"] for d in failed["x-death"]], ["txmsg.delay.02"])

        replies = {cid: body for cid, body, _ in c.collect(3, 10)}
        self.assertEqual(replies[good], {"id": good, "status": "ok", "result": 5})
        self.assertEqual(replies[unknown]["error"]["type"], "UnknownTask")
        self.assertEqual(replies[failing]["error"], {"type": "TaskFailed", "message": "boom"})

        self.worker.assert_running()
        log = self.worker.log()
        # Two retries, each one warning line; then the final failure, logged
        # with its traceback.
        self.assertEqual(log.count("failed on attempt"), 2, log)
        self.assertEqual(log.count("failed on its last attempt (3)"), 1, log)
        status = self.worker.terminate()
        self.assertEqual(status, -15, log)
        log = self.worker.log()
        self.assertIn("Server Shut Down.", log)
        # The only traceback logged is the failing task's last run; its two
        # earlier runs are one warning line each.
        self.assertEqual(log.count("Traceback"), 1, log)
        self.assertEqual(log.count("TaskFailed: boom"), 3, log)
        self.assertEqual(c.count(self.queue), 0)


class PoisonMessageRedisTests(RedisBroker, PoisonMessageTests):
    """
    The same on Redis Streams (retries wait in the queue's delay set).
    """
