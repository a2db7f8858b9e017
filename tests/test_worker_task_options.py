# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests of per-task options against RabbitMQ and a
C{twistd -n txmsg-worker} process: priorities (a high-priority task
overtakes 1,000 queued ones at prefetch 1), retry rules (retried or not),
C{raise Retry}, expiry and ETA in the v2 envelope.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pika
from twisted.trial.unittest import TestCase

from tests._amqp_support import ROOT
from tests._process import script
from tests._worker_support import (
    REDIS_URL,
    Client,
    WorkerProcess,
    delete_worker_queues,
    require_broker,
    unique,
    worker_env,
)
from txmsg.worker.retry import RetryPolicy

RETRY = RetryPolicy(max_retries=2, initial_delay=0.2)


def publish(client: Client, queue: str, body: dict[str, Any], priority: int | None = None) -> str:
    """
    Publish a task body (any version) with a reply address, confirmed.
    """
    task_id = body.setdefault("id", uuid.uuid4().hex)
    client.channel.basic_publish(
        "",
        queue,
        json.dumps(body).encode(),
        pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=task_id,
            correlation_id=task_id,
            reply_to=client.reply_queue,
            priority=priority,
        ),
        mandatory=True,
    )
    return str(task_id)


class PriorityTests(TestCase):
    """
    C{--max-priority}: the broker hands a free worker the highest-priority
    task first.
    """

    timeout = 120

    def test_high_priority_overtakes(self) -> None:
        """
        At prefetch 1, a worker busy with a 5 s task has 1,000 low-priority
        tasks queued behind it; a high-priority task sent after them is the
        next one it runs.
        """
        require_broker()
        queue = unique("txmsg-priority")
        self.addCleanup(delete_worker_queues, [queue])
        client = Client()
        self.addCleanup(client.close)
        client.channel.queue_declare(queue, durable=True, arguments={"x-max-priority": 10})
        worker = WorkerProcess([queue], "--max-priority", "10", "--prefetch", "1")
        self.addCleanup(worker.cleanup)
        worker.start()
        busy = publish(client, queue, {"task": "sleep", "args": [5]})
        for i in range(1000):
            publish(client, queue, {"task": "square", "args": [i]}, priority=0)
        high = publish(client, queue, {"task": "square", "args": [-1]}, priority=9)
        sent = time.monotonic()
        replies = client.collect(1002, 90)
        order = [task_id for task_id, _, _ in replies]
        self.assertLess(sent, replies[0][2], "all were queued while the worker was busy")
        self.assertEqual(order[:2], [busy, high])
        self.assertEqual(len(set(order)), 1002)

    def test_mismatched_declaration_is_one_line(self) -> None:
        """
        A worker started with C{--max-priority} on a queue that exists
        without it fails with the broker's reason, not a traceback.
        """
        require_broker()
        queue = unique("txmsg-priority")
        self.addCleanup(delete_worker_queues, [queue])
        client = Client()
        self.addCleanup(client.close)
        client.declare(queue)
        worker = WorkerProcess([queue], "--max-priority", "10", ready="PRECONDITION_FAILED")
        self.addCleanup(worker.cleanup)
        worker.start()
        self.assertIn("x-max-priority", worker.log())


class RetryRuleTests(TestCase):
    """
    Retry rules and envelope times, on a real worker.
    """

    timeout = 90

    def setUp(self) -> None:
        require_broker()
        self.queue = unique("txmsg-rules")
        self.addCleanup(delete_worker_queues, [self.queue], RETRY)
        self.client = Client()
        self.addCleanup(self.client.close)
        self.client.declare(self.queue)
        self.worker = WorkerProcess([self.queue], "--max-retries", "2", "--retry-delay", "0.2")
        self.addCleanup(self.worker.cleanup)
        self.worker.start()

    def test_retried_or_not(self) -> None:
        """
        A C{ValueError} is dead-lettered after one run; a
        C{ConnectionError} runs 1 + max_retries times; C{raise Retry}
        runs again.
        """
        value = self.client.submit(self.queue, "raise_error", "value")
        connection = self.client.submit(self.queue, "raise_error", "connection")
        again = self.client.submit(self.queue, "retry_once", 0.1)
        replies = {task_id: body for task_id, body, _ in self.client.collect(3, 60)}
        self.assertEqual(replies[value]["error"], {"type": "ValueError", "message": "attempt 1"})
        self.assertEqual(
            replies[connection]["error"], {"type": "ConnectionError", "message": "attempt 3"}
        )
        self.assertEqual(replies[again]["result"]["value"], 2)

    def test_expired_and_eta(self) -> None:
        """
        A v2 task that expired before delivery is dead-lettered as
        C{expired}, with a C{TaskExpired} reply; one with an ETA 1.5 s
        ahead runs no earlier than its ETA.
        """
        expired = publish(
            self.client,
            self.queue,
            {"v": 2, "task": "square", "args": [2], "expires": time.time() - 1},
        )
        eta = time.time() + 1.5
        later = publish(
            self.client, self.queue, {"v": 2, "task": "square", "args": [3], "eta": eta}
        )
        replies = {r[0]: r for r in self.client.collect(2, 60)}
        self.assertEqual(replies[expired][1]["error"]["type"], "TaskExpired")
        self.assertEqual(replies[later][1]["result"]["value"], 9)
        [(properties, _)] = self.client.get_all(self.queue + ".dead")
        self.assertEqual(properties.headers["x-txmsg-reason"], "expired")

    def test_future_version(self) -> None:
        """
        A body of a version newer than the worker's is dead-lettered as
        C{unsupported-version} with a reply saying so.
        """
        task_id = publish(self.client, self.queue, {"v": 99, "task": "square", "args": [1]})
        [(correlation_id, body, _)] = self.client.collect(1, 30)
        self.assertEqual(correlation_id, task_id)
        self.assertEqual(body["error"]["type"], "UnsupportedVersion")
        [(properties, _)] = self.client.get_all(self.queue + ".dead")
        self.assertEqual(properties.headers["x-txmsg-reason"], "unsupported-version")

    def test_send_command(self) -> None:
        """
        C{txmsg send} with C{--priority} and C{--expires} sends a v2 task the
        worker runs (and waits for its result with C{--wait}).
        """
        argv = [script("txmsg"), "send", "square", "7", "--queue", self.queue]
        argv += [
            "--priority",
            "3",
            "--expires",
            "60",
            "--amqp",
            "amqp://guest:guest@127.0.0.1:5672/%2F",
        ]
        done = subprocess.run(argv + ["--wait"], capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout)["value"], 49)


class HandlesExampleTests(TestCase):
    """
    C{examples/task_handles.py} against a worker that records results.
    """

    timeout = 120

    def test_example(self) -> None:
        """
        The result read through the task reference, the worker that ran it,
        an RPC call and a revoke, from another process.
        """
        require_broker()
        queue = unique("txmsg-handles")
        self.addCleanup(delete_worker_queues, [queue])
        worker = WorkerProcess(
            [queue],
            "--results",
            REDIS_URL,
            "--name",
            unique("txmsg-handles-worker"),
            tasks="examples.worker_tasks",
            ready="Consuming {} (".format(queue),
        )
        self.addCleanup(worker.cleanup)
        worker.start()
        done = subprocess.run(
            [sys.executable, os.path.join(ROOT, "examples", "task_handles.py"), queue, REDIS_URL],
            cwd=ROOT,
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=90,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        self.assertEqual(lines[0]["result"], 5)
        self.assertEqual(lines[1]["status"], "succeeded")
        self.assertTrue(lines[1]["worker"].startswith("txmsg-handles-worker"))
        self.assertEqual(lines[2], {"called": 42})
        self.assertEqual(lines[3]["status"], "revoked")
