# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration test: tasks with random countdowns wait in RabbitMQ's delay
levels and reach a C{twistd -n txmsg-worker} no earlier than their ETA and
within a second after it, across a worker restart and a broker
C{stop_app}/C{start_app} (on a private node: the shared one is never
stopped).

C{TXMSG_DELAY_TASKS} sets how many tasks (default 300; C{make test-delays}
runs 1,000).  A task whose ETA falls while nothing can deliver it (the
worker is restarting, the broker is stopped) is due when delivery is
possible again: it must then arrive within a second of that moment.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time

from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from tests._amqp_support import PrivateBroker
from tests._worker_support import WorkerProcess, unique, wait_until
from txmsg.amqp import AMQPConnection, DelayedDelivery
from txmsg.worker.client import TaskClient

#: Seconds a task may arrive after it is due.
LATE = 1.0


def lateness_report(lateness: list[float]) -> str:
    """p50 / p99 / max of a list of seconds, in milliseconds."""
    s = sorted(lateness)
    if not s:
        return "none"

    def pct(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))] * 1000

    return "p50 {:.0f} ms, p99 {:.0f} ms, max {:.0f} ms (n={})".format(
        pct(0.5), pct(0.99), s[-1] * 1000, len(s)
    )


class DelayedTasksTests(TestCase):
    """
    Countdowns from 0.1 to 5 s, on quorum queues (work queue and delay
    levels), through a worker restart and a broker restart.
    """

    timeout = 300

    def setUp(self) -> None:
        self.broker = PrivateBroker()
        self.addCleanup(self.broker.stop)
        self.broker.start()
        self.queue = unique("txmsg-delays")
        fd, self.record = tempfile.mkstemp(prefix="txmsg-delays-", suffix=".txt")
        os.close(fd)
        self.addCleanup(os.unlink, self.record)

    def arrivals(self) -> dict[int, float]:
        """Each task's first arrival (wall-clock time)."""
        first: dict[int, float] = {}
        with open(self.record) as f:
            for line in f:
                item, at = line.split()
                first.setdefault(int(item), float(at))
        return first

    def worker(self) -> WorkerProcess:
        w = WorkerProcess(
            [self.queue], "--queue-type", "quorum", "--prefetch", "50", url=self.broker.url
        )
        self.addCleanup(w.cleanup)
        return w.start(timeout=60)

    async def submit(self, count: int) -> dict[int, float]:
        """Submit C{count} tasks with random countdowns; return their ETAs."""
        conn = AMQPConnection(self.broker.url)
        conn.startService()
        try:
            client = TaskClient(conn, queue=self.queue, timeout=30)
            client.delays = DelayedDelivery(conn, queue_type="quorum")
            etas: dict[int, float] = {}
            pending = []
            rng = random.Random()
            for i in range(count):
                etas[i] = time.time() + rng.uniform(0.1, 5.0)
                pending.append(client.submit("arrived", (self.record, i), eta=etas[i]))
            await gatherResults(pending)
            return etas
        finally:
            await conn.stopService()

    async def test_countdowns_across_restarts(self) -> None:
        """
        Every task arrives, none before its ETA, each within a second of
        being due, although the worker and then the broker restart while
        they wait.
        """
        count = int(os.environ.get("TXMSG_DELAY_TASKS", "300"))
        worker = self.worker()
        etas = await self.submit(count)
        published = time.time()
        outages: list[tuple[float, float]] = []

        # The worker restarts (a graceful stop, then a new process).
        time.sleep(max(0.0, published + 1.0 - time.time()))
        down = time.time()
        worker.terminate()
        worker = self.worker()
        outages.append((down, time.time()))

        # The broker application stops and starts; the worker reconnects.
        time.sleep(0.5)
        before = worker.log().count("is open")
        down = time.time()
        self.broker.ctl("stop_app")
        self.broker.ctl("start_app")
        self.broker.ctl("await_startup")
        wait_until(lambda: worker.log().count("is open") > before, 30, "the worker to reconnect")
        outages.append((down, time.time()))

        wait_until(lambda: len(self.arrivals()) >= count, 60, "every task to arrive")
        worker.assert_running()
        arrived = self.arrivals()
        early, late, lateness, after_outage = [], [], [], []
        for i, eta in etas.items():
            at = arrived[i]
            due = eta
            for start, end in outages:
                if start - LATE < eta <= end:
                    due = max(eta, end)
            if at < eta:
                early.append((i, eta - at))
            if at > due + LATE:
                late.append((i, at - due))
            (lateness if due == eta else after_outage).append(max(0.0, at - due))
        sys.stderr.write(
            "\n  [delays] {} tasks; outages {}; lateness when due: {}; "
            "after an outage: {}\n".format(
                count,
                ", ".join("{:.1f}s".format(e - s) for s, e in outages),
                lateness_report(lateness),
                lateness_report(after_outage),
            )
        )
        self.assertEqual(early, [], "tasks ran before their ETA (seconds early)")
        self.assertEqual(late, [], "tasks ran over a second after they were due")
        self.assertEqual(sorted(arrived), list(range(count)))
