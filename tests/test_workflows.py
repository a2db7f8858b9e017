# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: chords on C{twistd -n txmsg-worker} processes with the
default RabbitMQ and Redis: a member that fails (the error path), members
redelivered after their worker was SIGKILLed while running them, and a
1,000-member chord.  The callback's runs are counted in a file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from tests._amqp_support import SHARED_URL
from tests._redis_support import redis_py
from tests._worker_support import (
    REDIS_URL,
    WorkerProcess,
    delete_worker_queues,
    require_broker,
    unique,
    wait_until,
)
from txmsg.worker.client import TaskClient
from txmsg.worker.handles import TaskFailed
from txmsg.worker.signature import Signature
from txmsg.worker.workflows import chord, group


def lines(path: str) -> list[dict[str, Any]]:
    """The records a task module wrote to C{path}."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class WorkflowTests(TestCase):
    """Chords across worker processes."""

    timeout = 180

    def setUp(self) -> None:
        require_broker()
        self.redis = redis_py()
        self.queue = unique("txmsg-wf")
        self.addCleanup(delete_worker_queues, [self.queue])
        fd, self.path = tempfile.mkstemp(prefix="txmsg-wf-")
        os.close(fd)
        self.addCleanup(
            lambda: [
                os.path.exists(p) and os.unlink(p) for p in (self.path, self.path + ".release")
            ]
        )

    def worker(self, *args: str) -> WorkerProcess:
        w = WorkerProcess(
            [self.queue],
            "--redis",
            REDIS_URL,
            "--results",
            REDIS_URL,
            "--name",
            unique("txmsg-wf-worker"),
            *args,
            tasks="tests._workflow_tasks",
        )
        self.addCleanup(w.cleanup)
        return w.start(timeout=60)

    async def client(self) -> TaskClient:
        client = await TaskClient.connect(SHARED_URL, queue=self.queue, results=REDIS_URL)
        self.addCleanup(client.stopService)
        return client

    def forget(self, workflow_id: str) -> None:
        """Delete the keys of workflow C{workflow_id} and its members."""
        self.addCleanup(
            lambda: [self.redis.delete(k) for k in self.redis.scan_iter("*" + workflow_id + "*")]
        )

    def s(self, name: str, *args: Any) -> Signature[Any]:
        return Signature(name, args)

    def callbacks(self) -> list[dict[str, Any]]:
        return [r for r in lines(self.path) if "total" in r]

    def test_member_fails(self) -> None:
        """
        One member fails for good: the chord is C{failed} naming it, the
        callback never runs, the error callback runs once.
        """

        async def run() -> None:
            self.worker("--prefetch", "10")
            client = await self.client()
            members = [self.s("wf_square", 1), self.s("wf_fail", 2), self.s("wf_square", 3)]
            workflow = chord(
                group(members),
                self.s("wf_total", self.path),
                link_error=self.s("wf_errback", self.path),
            )
            ref = await workflow.send(client)
            self.forget(ref.id)
            failure = await self.assertFailure(ref.result(timeout=30), TaskFailed)
            self.assertEqual(failure.error_type, "ValueError")
            self.assertIn(ref.id + ":0:1", failure.message)
            wait_until(lambda: any("error" in r for r in lines(self.path)), 30, "the errback")
            time.sleep(1)  # a second errback or a callback would show by now
            errors = [r["error"] for r in lines(self.path) if "error" in r]
            self.assertEqual(
                [(e["task_id"], e["error_type"]) for e in errors], [(ref.id + ":0:1", "ValueError")]
            )
            self.assertEqual(self.callbacks(), [])

        return ensureDeferred(run())

    def test_members_redelivered_after_sigkill(self) -> None:
        """
        Worker A runs all five members and is SIGKILLed while they run;
        worker B gets them redelivered (claimed by A: B waits until A has
        left the roster, then runs them again); the callback runs once.
        """

        async def run() -> None:
            a = self.worker("--prefetch", "10")
            client = await self.client()
            workflow = chord(
                group(self.s("wf_block", i, self.path) for i in range(5)),
                self.s("wf_total", self.path),
            )
            ref = await workflow.send(client)
            self.forget(ref.id)
            wait_until(lambda: len(lines(self.path)) == 5, 30, "five members started on A")
            a.kill()
            open(self.path + ".release", "w").close()
            self.worker("--prefetch", "10")
            started = time.monotonic()
            result = await ref.result(timeout=90)
            took = time.monotonic() - started
            self.assertEqual(result, sum(i * i for i in range(5)))
            time.sleep(1)
            self.assertEqual(len(self.callbacks()), 1)
            starts = [r["start"] for r in lines(self.path) if "start" in r]
            self.assertEqual(sorted(starts), sorted(list(range(5)) * 2))
            sys.stderr.write(
                "\n  [workflows] chord recovered {:.1f}s after the SIGKILL\n".format(took)
            )

        return ensureDeferred(run())

    def test_thousand_members(self) -> None:
        """
        A 1,000-member chord on two workers: the callback runs once, with
        the 1,000 results in order.
        """

        async def run() -> None:
            self.worker("--prefetch", "50")
            self.worker("--prefetch", "50")
            client = await self.client()
            workflow = chord(
                group(self.s("wf_square", i) for i in range(1000)),
                self.s("wf_total", self.path),
            )
            started = time.monotonic()
            ref = await workflow.send(client)
            self.forget(ref.id)
            result = await ref.result(timeout=120)
            took = time.monotonic() - started
            self.assertEqual(result, sum(i * i for i in range(1000)))
            time.sleep(0.5)
            self.assertEqual([r["total"] for r in self.callbacks()], [1000])
            members = self.redis.hgetall("txmsg:{wf:" + ref.id + "}:stage:0")
            self.assertEqual(
                [json.loads(members[str(i).encode()]) for i in range(1000)],
                [i * i for i in range(1000)],
            )
            sys.stderr.write("\n  [workflows] 1,000-member chord in {:.1f}s\n".format(took))

        return ensureDeferred(run())
