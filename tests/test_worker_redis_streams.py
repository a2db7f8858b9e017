# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests of the worker on Redis Streams that have no RabbitMQ
counterpart: a consumer killed with pending entries (claimed by another
within the visibility timeout), and Redis itself restarted mid-run, with
and without an append-only file (private C{redis-server}s: the shared one
is never touched).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from twisted.trial.unittest import TestCase

from tests._amqp_support import ROOT
from tests._redis_support import RedisServer, redis_py
from tests._streams_support import REDIS_URL, RedisBroker, RedisClient, stream_key
from tests._worker_support import OneQueueMixin, WorkerProcess, unique, wait_until, worker_env


class ClaimTests(RedisBroker, OneQueueMixin, TestCase):
    """
    Pending entries of a dead consumer.
    """

    timeout = 60
    queue_prefix = "txmsg-streams-claim"

    def test_killed_consumer_entries_claimed_within_visibility_timeout(self) -> None:
        """
        A worker holding 5 entries is SIGKILLed; a worker started after it
        (visibility timeout 3 s) claims all 5 once they were idle 3 s and
        completes them, as redeliveries, within a few seconds; nothing is
        left pending.
        """
        a = self.worker("--prefetch", "5")
        ids = {self.client.submit(self.queue, "wait", 30.0) for _ in range(5)}
        wait_until(lambda: self.client.count(self.queue) == 0, 10, "the worker to take 5")
        a.kill()
        killed = time.monotonic()
        name = unique("txmsg-streams-b")
        b = self.worker("--prefetch", "5", "--grace", "1", "--name", name)
        wait_until(lambda: "Claimed 5 entr" in b.log(), 10, "the other worker to claim the entries")
        took = time.monotonic() - killed
        self.assertGreaterEqual(took, 2.5)
        self.assertLess(took, 8, b.log())
        pending = self.client.redis.xpending(stream_key(self.queue), "txmsg")
        self.assertEqual(pending["pending"], 5)
        self.assertEqual([c["name"].decode() for c in pending["consumers"]], [name])
        status = b.terminate(timeout=20)
        b.assert_clean_stop(status)
        # Cancelled at the grace period's end: handed back, counted.
        self.assertEqual(self.client.count(self.queue), 5)
        self.assertEqual(self.client.replies, [])
        self.assertEqual(len(ids), 5)


class ProducerExampleTests(RedisBroker, OneQueueMixin, TestCase):
    """
    examples/redis_streams_producer.py: a redis-py producer.
    """

    timeout = 60
    queue_prefix = "txmsg-streams-example"

    def test_redis_py_producer(self) -> None:
        """
        The example submits three C{add} tasks with plain XADDs and prints
        the results the worker added to its reply stream.
        """
        w = WorkerProcess(
            [self.queue], tasks="examples.worker_tasks", broker_args=self.broker_args()
        )
        self.addCleanup(w.cleanup)
        w.start()
        done = subprocess.run(
            [sys.executable, "examples/redis_streams_producer.py", "--queue", self.queue],
            cwd=ROOT,
            env=worker_env(TXMSG_REDIS_URL=REDIS_URL),
            capture_output=True,
            text=True,
            timeout=45,
        )
        self.assertEqual(done.returncode, 0, done.stderr + w.log())
        self.assertEqual(
            sorted(done.stdout.splitlines()), ["add(0, 0) = 0", "add(1, 1) = 2", "add(2, 2) = 4"]
        )
        # txmsg send on Redis: results with --wait, ids without.
        sent = self.txmsg_send("add", "2", "3", "--wait", "--count", "3")
        self.assertEqual(sent.returncode, 0, sent.stderr + w.log())
        self.assertEqual(sent.stdout.splitlines(), ["5", "5", "5"])
        sent = self.txmsg_send("add", "1", "1")
        self.assertEqual((sent.returncode, len(sent.stdout.strip())), (0, 32), sent.stderr)
        failed = self.txmsg_send("no_such_task", "--wait")
        self.assertEqual(failed.returncode, 1)
        self.assertIn("UnknownTask", failed.stderr)
        # txmsg dead-letters on Redis: list, requeue (it dies again), purge.
        listed = self.txmsg("dead-letters", self.queue)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("1 dead letter(s)", listed.stdout)
        self.assertIn("no_such_task", listed.stdout)
        self.assertIn("unknown-task", listed.stdout)
        again = self.txmsg("dead-letters", self.queue, "--requeue")
        self.assertIn("requeued 1 dead letter(s)", again.stdout, again.stderr)
        wait_until(lambda: self.client.count(self.queue + ".dead") == 1, 10, "it to die again")
        purged = self.txmsg("dead-letters", self.queue, "--purge")
        self.assertIn("purged 1 dead letter(s)", purged.stdout, purged.stderr)
        self.assertEqual(self.client.count(self.queue + ".dead"), 0)
        w.assert_clean_stop(w.terminate())

    def txmsg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "txmsg"), *args,
             "--broker", REDIS_URL],
            cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=45,
        )  # fmt: skip

    def txmsg_send(
        self, *args: str, url: str = REDIS_URL, timeout: str = "10"
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "txmsg"), "send", *args,
             "--queue", self.queue, "--broker", url, "--timeout", timeout],
            cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=45,
        )  # fmt: skip

    def test_results_and_revoke(self) -> None:
        """
        With C{--results}, a task run from the stream has its result in the
        store (C{txmsg result}); a task revoked while queued is not run
        (dead-lettered as C{revoked}).
        """
        w = WorkerProcess(
            [self.queue],
            "--results",
            REDIS_URL,
            "--concurrency",
            "1",
            tasks="examples.worker_tasks",
            broker_args=self.broker_args(),
        )
        self.addCleanup(w.cleanup)
        w.start()
        done = self.txmsg_send("add", "20", "22")
        task_id = done.stdout.strip()
        result = self.txmsg_cli("result", task_id, "--wait", "--timeout", "10")
        self.assertEqual(result.stdout.strip(), task_id + " succeeded: 42", result.stderr)
        self.txmsg_send("sleep", "2")
        queued = self.txmsg_send("add", "1", "1").stdout.strip()
        revoked = self.txmsg_cli("revoke", queued)
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        wait_until(lambda: self.client.count(self.queue + ".dead") == 1, 15, "the revoked task")
        [(props, _)] = self.client.get_all(self.queue + ".dead")
        self.assertEqual(props.headers["x-txmsg-reason"], "revoked")
        w.assert_clean_stop(w.terminate())

    def txmsg_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "txmsg"), *args, "--redis", REDIS_URL],
            cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=45,
        )  # fmt: skip

    def test_eta_waits_in_redis(self) -> None:
        """
        A v2 task whose ETA is 2 s away waits in the delay set (the worker
        sends it back, uncounted) and runs once due, not before.
        """
        w = self.worker()
        started = time.time()
        body = {"v": 2, "task": "square", "args": [3], "id": "eta-1", "eta": started + 2.0}
        self.client.publish_raw(
            self.queue,
            json.dumps(body).encode(),
            content_type="application/json",
            correlation_id="eta-1",
            reply=True,
        )
        [(_, reply, _)] = self.client.collect(1, 15)
        self.assertGreaterEqual(time.time(), started + 2.0)
        self.assertEqual(reply["result"]["value"], 9)
        self.assertFalse(reply["result"]["redelivered"])
        w.assert_clean_stop(w.terminate())

    def test_send_unreachable_redis_one_line(self) -> None:
        """
        C{txmsg send --broker} to a Redis nobody listens on: status 1, one
        line naming the cause, the password redacted.
        """
        port = RedisServer().port  # a free port, nothing started on it
        sent = self.txmsg_send(
            "add", "1", "2", url="redis://:s3cret@127.0.0.1:{}/0".format(port), timeout="2"
        )
        self.assertEqual(sent.returncode, 1)
        self.assertEqual(len(sent.stderr.strip().splitlines()), 1, sent.stderr)
        self.assertIn("cannot reach Redis", sent.stderr)
        self.assertNotIn("s3cret", sent.stderr)


class RedisRestartTests(TestCase):
    """
    Redis restarted under a running worker (a private server).
    """

    timeout = 120

    def setUp(self) -> None:
        self.queue = unique("txmsg-streams-restart")
        fd, self.record = tempfile.mkstemp(prefix="txmsg-streams-restart-")
        os.close(fd)
        self.addCleanup(os.unlink, self.record)

    def recorded(self) -> list[int]:
        with open(self.record) as f:
            return [int(line) for line in f if line.strip()]

    def server(self, *extra: str) -> RedisServer:
        server = RedisServer(*extra)
        self.addCleanup(server.cleanup)
        return server.start()

    def worker(self, server: RedisServer) -> WorkerProcess:
        w = WorkerProcess(
            [self.queue],
            "--prefetch",
            "4",
            broker_args=["--broker", server.url, "--visibility-timeout", "3"],
        )
        self.addCleanup(w.cleanup)
        return w.start()

    def submit(self, server: RedisServer, items: range) -> None:
        client = RedisClient(server.url)
        try:
            for i in items:
                client.submit(self.queue, "record", self.record, i, 0.02, reply=False)
        finally:
            client.redis.close()

    def crash(self, server: RedisServer) -> None:
        """SIGKILL the server (no chance to save), then start it again."""
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        server.process = None
        server.start()

    def test_aof_always_nothing_acked_is_lost(self) -> None:
        """
        With C{appendonly yes} and C{appendfsync always}, Redis killed with
        SIGKILL while 300 tasks flow loses nothing: the worker reconnects,
        and every task whose XADD was answered runs at least once (those
        running at the crash may run twice).
        """
        server = self.server("--appendonly", "yes", "--appendfsync", "always")
        worker = self.worker(server)
        self.submit(server, range(300))
        wait_until(lambda: len(self.recorded()) >= 20, 20, "tasks to flow")
        self.crash(server)
        done_before = len(set(self.recorded()))
        self.submit(server, range(300, 400))
        wait_until(lambda: set(range(400)) <= set(self.recorded()), 60, "every task to run")
        self.assertLess(done_before, 300, "the crash came after the work was done")
        worker.assert_running()
        r = redis_py(server.url)
        self.addCleanup(r.close)
        wait_until(lambda: r.xlen(stream_key(self.queue)) == 0, 10, "the stream to empty")
        worker.assert_clean_stop(worker.terminate())

    def test_no_persistence_loses_the_queue(self) -> None:
        """
        Without persistence (no AOF, no snapshots), the same crash loses
        every entry not yet settled: the honest cost of running Redis
        without persistence.  The worker still resumes (it recreates the
        consumer group) and runs tasks submitted afterwards.
        """
        server = self.server()
        worker = self.worker(server)
        self.submit(server, range(300))
        wait_until(lambda: len(self.recorded()) >= 20, 20, "tasks to flow")
        self.crash(server)
        time.sleep(0.5)
        done_before = set(self.recorded())
        self.submit(server, range(300, 350))
        wait_until(lambda: set(range(300, 350)) <= set(self.recorded()), 30, "new tasks to run")
        time.sleep(1.0)
        lost = set(range(300)) - set(self.recorded())
        self.assertLess(len(done_before), 300)
        # What was queued at the crash is gone for good.
        self.assertGreater(len(lost), 0, worker.log())
        worker.assert_running()
        worker.assert_clean_stop(worker.terminate())
