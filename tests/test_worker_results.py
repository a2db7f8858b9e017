# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: task states and results stored by a C{twistd -n
txmsg-worker --results} process, read from other processes (C{txmsg
result}, redis-py), and revoked with C{txmsg revoke}.
"""

from __future__ import annotations

import json
import subprocess
import time

from twisted.trial.unittest import TestCase

from tests._amqp_support import ROOT
from tests._process import script
from tests._redis_support import redis_py
from tests._worker_support import (
    REDIS_URL,
    Client,
    WorkerProcess,
    delete_worker_queues,
    require_broker,
    unique,
    wait_until,
    worker_env,
)
from txmsg.worker.results import result_key
from txmsg.worker.retry import dead_letter_queue_name


def txmsg(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the C{txmsg} command (this tree's code) and return what it did."""
    return subprocess.run(
        [script("txmsg"), *args],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class ResultsTests(TestCase):
    """A worker with C{--results}: states, results and revokes in Redis."""

    timeout = 120

    def setUp(self) -> None:
        require_broker()
        self.redis = redis_py()
        self.queue = unique("txmsg-results")
        self.addCleanup(delete_worker_queues, [self.queue])
        self.worker = WorkerProcess(
            [self.queue],
            "--results",
            REDIS_URL,
            "--name",
            unique("txmsg-results-worker"),
            "--results-ttl",
            "600",
            ready="listening for revokes on txmsg:revoke",
        )
        self.addCleanup(self.worker.cleanup)
        self.worker.start()
        wait_until(
            lambda: "Consuming {} (".format(self.queue) in self.worker.log(), 10, "consuming"
        )
        self.client = Client()
        self.addCleanup(self.client.close)
        self.ids: list[str] = []
        self.addCleanup(lambda: self.ids and self.redis.delete(*map(result_key, self.ids)))

    def task_id(self) -> str:
        task_id = unique("task")
        self.ids.append(task_id)
        return task_id

    def status(self, task_id: str) -> str | None:
        value = self.redis.hget(result_key(task_id), "status")
        return value.decode() if value is not None else None

    def test_result_from_other_processes(self) -> None:
        """
        A waiter started before the task is submitted (another process)
        gets the result pushed; a later C{txmsg result} reads it; redis-py
        sees the hash with its TTL.
        """
        task_id = self.task_id()
        waiter = subprocess.Popen(
            [script("txmsg"), "result", task_id, "--wait", "--json", "--timeout", "30"],
            cwd=ROOT,
            env=worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(lambda: waiter.poll() is None and waiter.kill())
        time.sleep(1.0)  # the waiter subscribes; the push must still reach it
        self.client.submit(self.queue, "square", 7, task_id=task_id)
        out, err = waiter.communicate(timeout=40)
        self.assertEqual(waiter.returncode, 0, err)
        state = json.loads(out)
        self.assertEqual((state["status"], state["result"]["value"]), ("succeeded", 49))
        self.assertEqual((state["task"], state["attempts"]), ("square", 1))
        self.assertTrue(state["started"] <= state["finished"])
        later = txmsg("result", task_id, "--redis", REDIS_URL)
        self.assertEqual(later.returncode, 0, later.stderr)
        self.assertTrue(later.stdout.startswith(task_id + " succeeded: {"), later.stdout)
        self.assertTrue(0 < self.redis.ttl(result_key(task_id)) <= 600)

    def test_written_before_reply_and_ack(self) -> None:
        """
        The state is terminal by the time the reply arrives (the worker
        writes it before it replies and acks), for every one of 50 tasks.
        """
        ids = [self.task_id() for _ in range(50)]
        seen: dict[str, str | None] = {}
        for task_id in ids:
            self.client.submit(self.queue, "square", 3, task_id=task_id)
        original = self.client._on_reply

        def on_reply(channel: object, method: object, properties: object, body: bytes) -> None:
            seen[properties.correlation_id] = self.status(properties.correlation_id)  # type: ignore[attr-defined]
            original(channel, method, properties, body)

        self.client._on_reply = on_reply  # type: ignore[method-assign]
        self.client.collect(50, 30)
        self.assertEqual(set(seen.values()), {"succeeded"})
        self.assertEqual(len(seen), 50)

    def test_failed_then_unknown(self) -> None:
        """A failing task ends C{failed} with its error; an unknown id exits 1."""
        task_id = self.task_id()
        self.client.submit(self.queue, "fail", "bad input", task_id=task_id)
        done = txmsg("result", task_id, "--wait", "--timeout", "60", "--redis", REDIS_URL)
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn("failed: ValueError: bad input", done.stdout)
        missing = txmsg("result", unique("never"), "--redis", REDIS_URL)
        self.assertEqual(missing.returncode, 1)
        self.assertIn("nothing stored for task", missing.stderr)

    def test_revoke_queued(self) -> None:
        """
        A task queued behind a running one and revoked is not run: it is
        dead-lettered with reason C{revoked}, and its caller is told.
        """
        blocker, queued = self.task_id(), self.task_id()
        self.client.submit(self.queue, "wait", 2.0, task_id=blocker)
        wait_until(lambda: self.status(blocker) == "started", 10, "the blocker to start")
        self.client.submit(self.queue, "square", 5, task_id=queued)
        revoked = txmsg("revoke", queued, "--redis", REDIS_URL)
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertEqual(revoked.stdout.strip(), queued + ": revoked")
        replies = {r[0]: r[1] for r in self.client.collect(2, 30)}
        self.assertEqual(replies[blocker]["status"], "ok")
        self.assertEqual(replies[queued]["error"]["type"], "TaskRevoked")
        [(headers, _)] = [
            (p.headers, b) for p, b in self.client.get_all(dead_letter_queue_name(self.queue))
        ]
        self.assertEqual(headers["x-txmsg-reason"], "revoked")
        self.assertEqual(self.status(queued), "revoked")

    def test_revoke_running(self) -> None:
        """A running task is cancelled by C{txmsg revoke} and ends C{revoked}."""
        task_id = self.task_id()
        self.client.submit(self.queue, "wait", 60.0, task_id=task_id)
        wait_until(lambda: self.status(task_id) == "started", 10, "the task to start")
        started = time.monotonic()
        revoked = txmsg("revoke", task_id, "--redis", REDIS_URL)
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        # "revoked" when the worker was faster than the command's read back
        self.assertTrue(revoked.stdout.startswith(task_id + ": "), revoked.stdout)
        wait_until(lambda: self.status(task_id) == "revoked", 10, "the task to be revoked")
        self.assertLess(time.monotonic() - started, 10)
        [(_, body, _)] = self.client.collect(1, 10)
        self.assertEqual(body["error"]["type"], "TaskRevoked")
        self.assertIn("Revoked task {}: cancelled".format(task_id), self.worker.log())
