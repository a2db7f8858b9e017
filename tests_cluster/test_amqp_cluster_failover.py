# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The failover proof on a private 3-node RabbitMQ cluster
(scripts/rabbitmq-cluster.sh): 10,000 confirmed tasks through quorum
queues while the node holding the work queue's leader (and the worker's and
the publisher's connections) is stopped and started again, with retries
waiting in the delay queue at that moment.

  - 0 confirmed tasks lost: every task whose publish the broker confirmed
    runs; a publish that fails (PublishLost, a timeout while no node is
    reachable) is published again, never dropped;
  - duplicates are counted and bounded by what was in flight;
  - the worker's /ready answers 503 while it has no connection, and 200
    again once it moved to a live node.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

from twisted.internet import reactor, task, threads
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.trial.unittest import TestCase

from tests._ops_support import get, run_plugin
from tests._worker_support import unique
from tests_cluster._cluster import RabbitCluster
from txmsg.amqp import AMQPConnection
from txmsg.amqp.publisher import PublishError
from txmsg.worker.client import TaskClient

TASKS = "tests_cluster._tasks"
TOTAL = 10_000
FLAKY_EVERY = 50  # every 50th task fails once: 200 retries


class ReadyWatcher:
    """Polls /ready in a thread; remembers every change with its time."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.changes: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            try:
                code = get(self.base + "/ready", timeout=2)[0]
            except Exception:
                code = -1
            if code != last:
                self.changes.append((time.monotonic(), code))
                last = code
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class ClusterFailoverTests(TestCase):
    """Quorum queues and multi-host connections across a node failure."""

    timeout = 900

    def setUp(self) -> None:
        self.cluster = RabbitCluster()
        self.addCleanup(self.cluster.down)
        self.cluster.up()
        fd, self.record = tempfile.mkstemp(prefix="txmsg-cluster-", suffix=".txt")
        os.close(fd)
        self.addCleanup(os.unlink, self.record)
        self.addCleanup(
            lambda: os.path.exists(self.record + ".first") and os.unlink(self.record + ".first")
        )

    def lines(self, path: str) -> list[int]:
        try:
            with open(path) as f:
                return [int(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    async def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s")
            await task.deferLater(reactor, 0.2, lambda: None)

    async def test_leader_node_stopped_and_restarted(self) -> None:
        """
        The leader's node stops (C{rabbitmqctl stop}) while 10,000 tasks
        flow and 200 retries wait; every confirmed task completes, /ready
        drops and comes back.
        """
        await self.failover("stop")

    async def test_leader_node_killed_and_restarted(self) -> None:
        """
        The same with the leader's node killed (SIGKILL: a crash, no
        connection close, unconfirmed publishes lost in flight).
        """
        await self.failover("kill")

    async def test_leader_node_killed_transactional_consumer(self) -> None:
        """
        The same with the worker's consumer on a transactional channel
        (C{--transactions}): the commits in flight when the leader's node
        dies fail, and what they carried comes back; nothing confirmed is
        lost.
        """
        await self.failover("kill", "--transactions")

    async def failover(self, how: str, *worker_args: str) -> None:
        """
        Run the proof, stopping the leader's node with C{<how>-node}, the
        worker started with C{worker_args} besides the usual ones.
        """
        queue = unique("txmsg-cluster")
        # the worker and the publisher both start on node 1, where the queue
        # gets its leader (declared there)
        urls = self.cluster.urls(1)
        worker, base = run_plugin(
            "txmsg-worker",
            [
                "--tasks",
                TASKS,
                "--queue",
                queue,
                "--amqp",
                urls,
                "--queue-type",
                "quorum",
                "--prefetch",
                "50",
                "--retry-delay",
                "4",
                "--retry-max-delay",
                "4",
                *worker_args,
            ],
        )
        self.addCleanup(worker.cleanup)
        await self.wait(lambda: get(base + "/ready")[0] == 200, 60, "/ready 200")
        queues = self.cluster.queues()
        self.assertEqual(queues[queue]["type"], "quorum")
        leader = self.cluster.leader(queue)
        # per-delay queues (<queue>.retry.<ms>) or shared delay levels (txmsg.delay...)
        delay_queues = [
            name for name in queues if name.startswith((queue + ".retry", "txmsg.delay"))
        ]
        self.assertTrue(delay_queues)
        for name in [*delay_queues, queue + ".dead"]:
            self.assertEqual(queues[name]["type"], "quorum", name)
        watcher = ReadyWatcher(base)
        self.addCleanup(watcher.stop)

        amqp = AMQPConnection(self.cluster.urls(leader), connection_name="cluster-test-publisher")
        amqp.startService()
        self.addCleanup(amqp.stopService)
        await amqp.when_ready(30)
        client = TaskClient(amqp, queue=queue, timeout=30)
        confirmed: set[int] = set()
        failures: list[str] = []
        gate = DeferredSemaphore(200)

        async def submit(i: int) -> None:
            name = "flaky" if i % FLAKY_EVERY == 0 else "record"
            while True:
                try:
                    await client.submit(name, [self.record, i], task_id=f"t{i}")
                except PublishError as e:
                    failures.append(type(e).__name__)
                    await task.deferLater(reactor, 0.2, lambda: None)
                    continue
                confirmed.add(i)
                return

        async def produce() -> None:
            # paced (about 250 tasks/s), so that publishing spans the failover
            pending = []
            for i in range(TOTAL):
                pending.append(gate.run(lambda i=i: Deferred.fromCoroutine(submit(i))))
                if i % 25 == 24:
                    await task.deferLater(reactor, 0.1, lambda: None)
            await gatherResults(pending, consumeErrors=True)

        producer = Deferred.fromCoroutine(produce())
        await self.wait(lambda: len(confirmed) >= 3000, 120, "3,000 confirmed")
        await self.wait(lambda: self.lines(self.record + ".first"), 60, "a retry in flight")
        in_delay = sum(self.cluster.queues()[q]["messages"] for q in delay_queues)
        stopped_at = time.monotonic()
        confirmed_before = len(confirmed)
        await threads.deferToThread(self.cluster.run, f"{how}-node", str(leader))
        stop_took = time.monotonic() - stopped_at
        await task.deferLater(reactor, 10, lambda: None)
        await threads.deferToThread(self.cluster.run, "start-node", str(leader))
        await producer
        self.assertEqual(len(confirmed), TOTAL)
        self.assertLess(confirmed_before, TOTAL // 2)  # publishing spanned the failover
        try:
            await self.wait(
                lambda: set(self.lines(self.record)) >= confirmed, 300, "every confirmed task"
            )
        except AssertionError:
            missing = sorted(confirmed - set(self.lines(self.record)))
            counts = {q: v["messages"] for q, v in self.cluster.queues(2).items()}
            raise AssertionError(
                f"{len(missing)} confirmed task(s) never ran, e.g. {missing[:10]}; queues: {counts}"
            ) from None
        done = self.lines(self.record)
        duplicates = len(done) - len(set(done))
        await self.wait(lambda: watcher.changes[-1][1] == 200, 60, "/ready 200 at the end")
        watcher.stop()
        codes = [code for _, code in watcher.changes]
        self.assertIn(503, codes, watcher.changes)
        down = [t for t, c in watcher.changes if c != 200 and t >= stopped_at]
        back = [t for t, c in watcher.changes if c == 200 and down and t > down[0]]
        self.assertTrue(back, watcher.changes)
        unready = back[0] - down[0]
        new_leader = self.cluster.leader(queue, 1 if leader != 1 else 2)
        self.assertEqual(confirmed - set(done), set())  # 0 confirmed lost
        self.assertLessEqual(duplicates, 50 + 100 + 200)  # prefetch + window + retries
        print(
            f"\nRabbitMQ cluster failover ({how}): leader node {leader} down (took {stop_took:.1f} s) "
            f"after {confirmed_before} confirmed; {TOTAL} tasks confirmed, "
            f"{len(set(done))} completed, 0 lost, {duplicates} duplicate(s); "
            f"{len(failures)} publish(es) failed and were sent again "
            f"({', '.join(sorted(set(failures))) or 'none'}); retries waiting at the stop: "
            f"{in_delay}; /ready not 200 for {unready:.1f} s; new leader: node {new_leader}"
        )
