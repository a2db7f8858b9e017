# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration test: poison messages never loop.  Each is dead-lettered once
with its reason while the good tasks queued behind it all complete, at
prefetch 1, on a real RabbitMQ with a C{twistd -n txmsg-worker} process.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid

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
NESTED = ('{"task":"add","args":[' + "[" * 1000 + "]" * 1000 + ",1]}").encode()


class PoisonTests(AMQPBroker, TestCase):
    """
    The three messages that used to loop forever.
    """

    timeout = 120

    def setUp(self) -> None:
        self.require()
        self.queue = unique("txmsg-worker-poison2")
        self.addCleanup(self.delete_queues, [self.queue], RETRY)
        self.client = self.make_client()
        self.addCleanup(self.client.close)
        self.client.declare(self.queue)
        fd, self.effects = tempfile.mkstemp(prefix="txmsg-poison-")
        os.close(fd)
        self.addCleanup(os.unlink, self.effects)

    def publish(self, body: bytes, headers: dict | None = None) -> None:
        """Publish a task body (confirmed) with C{headers}."""
        self.client.publish_raw(self.queue, body, content_type="application/json", headers=headers)

    def task(self, name: str, *args: object) -> bytes:
        return json.dumps({"task": name, "args": list(args), "id": uuid.uuid4().hex}).encode()

    def test_poison_dead_lettered_once_while_good_tasks_run(self) -> None:
        """
        A body nested 1,000 deep (C{malformed}), C{x-txmsg-attempts: "abc"}
        and C{x-txmsg-attempts: -5} on a failing task (C{bad-headers}) are
        each dead-lettered exactly once, the 100 good tasks behind them all
        complete at prefetch 1, and the failing task's side effects ran at
        most C{max_retries + 1} times.  No traceback is logged.
        """
        self.publish(NESTED)
        self.publish(self.task("add", 1, 2), {"x-txmsg-attempts": "abc"})
        self.publish(self.task("record_and_fail", self.effects, "x"), {"x-txmsg-attempts": -5})
        good = [self.client.submit(self.queue, "square", n) for n in range(100)]
        worker = WorkerProcess(
            [self.queue],
            "--prefetch",
            "1",
            "--max-retries",
            "2",
            "--retry-delay",
            "0.2",
            broker_args=self.broker_args(),
        )
        self.addCleanup(worker.cleanup)
        worker.start()

        replies = self.client.collect(100, 60)
        self.assertEqual(sorted(cid for cid, _, _ in replies), sorted(good))
        self.assertTrue(all(body["status"] == "ok" for _, body, _ in replies))
        dead = self.queue + ".dead"
        wait_until(lambda: self.client.count(dead) >= 3, 30, "3 dead letters")
        self.client.linger(1.0)  # anything looping would come back by now
        letters = self.client.get_all(dead)
        reasons = {body: props.headers["x-txmsg-reason"] for props, body in letters}
        self.assertEqual(len(letters), 3, reasons)
        self.assertEqual(reasons[NESTED], "malformed")
        self.assertEqual(sorted(reasons.values()), ["bad-headers", "bad-headers", "malformed"])
        with open(self.effects) as f:
            self.assertLessEqual(len(f.read().splitlines()), RETRY.max_retries + 1)
        self.assertEqual(self.client.count(self.queue), 0)
        worker.assert_running()
        log = worker.log()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("RecursionError", log)
        self.assertEqual(log.count("Dead-lettering"), 3, log)
        worker.assert_clean_stop(worker.terminate())


class PoisonRedisTests(RedisBroker, PoisonTests):
    """
    The same on Redis Streams.
    """
