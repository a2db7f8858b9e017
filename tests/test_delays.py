# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration test: tasks with random countdowns wait in RabbitMQ's delay
levels and reach a C{twistd -n txmsg-worker} no earlier than their ETA and
within a second after it, across a worker restart and a broker
C{stop_app}/C{start_app} (on a private node: the shared one is never
stopped).

C{TXMSG_DELAY_TASKS} sets how many tasks (default 1,000).  A task whose ETA
falls while nothing can deliver it (the broker is stopped) is due when
delivery is possible again: it must then arrive within a second of that
moment.
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
#: Tasks that fell due while the broker was down arrive together when the
#: workers are back: they are run at the workers' speed (hundreds at once
#: on a loaded 2-core machine), so their bound counts from the outage's end
#: and allows for that backlog. A task that falls due while the backlog
#: runs waits behind it: it is due when the backlog has run.
LATE_AFTER_OUTAGE = 5.0


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

    async def submit(self, items: range) -> dict[int, float]:
        """Submit one task per item with a random countdown; return their ETAs."""
        conn = AMQPConnection(self.broker.url)
        conn.startService()
        try:
            client = TaskClient(conn, queue=self.queue, timeout=30)
            client.delays = DelayedDelivery(conn, queue_type="quorum")
            etas: dict[int, float] = {}
            pending = []
            rng = random.Random()
            for i in items:
                etas[i] = time.time() + rng.uniform(0.1, 5.0)
                pending.append(client.submit("arrived", (self.record, i), eta=etas[i]))
            await gatherResults(pending)
            return etas
        finally:
            await conn.stopService()

    def check(self, etas: dict[int, float], outages: list[tuple[float, float]], label: str) -> None:
        """
        Every task in C{etas} arrived, none before its ETA, each within
        L{LATE} of its ETA; when it fell due during an outage, within
        L{LATE_AFTER_OUTAGE} of the outage's end; when it fell due while the
        tasks due during the outage were running, within L{LATE} of the last
        of them.
        """
        wait_until(lambda: set(etas) <= set(self.arrivals()), 60, "every task to arrive")
        arrived = self.arrivals()
        early, late, lateness, after_outage = [], [], [], []
        # When each outage's backlog (the tasks that fell due during it) had
        # run: a task due after the outage but before then waited behind it.
        drained = [
            max([end] + [arrived[i] for i, eta in etas.items() if start - LATE < eta <= end])
            for start, end in outages
        ]
        for i, eta in etas.items():
            at = arrived[i]
            deadline = eta + LATE
            resumed = None
            for (start, end), backlog_done in zip(outages, drained, strict=True):
                if start - LATE < eta <= end:
                    resumed, deadline = end, max(deadline, end + LATE_AFTER_OUTAGE)
                elif end < eta <= backlog_done:
                    resumed, deadline = end, max(deadline, backlog_done + LATE)
            if at < eta:
                early.append((i, eta - at))
            if at > deadline:
                late.append((i, at - eta))
            if resumed is not None:
                after_outage.append(max(0.0, at - max(eta, resumed)))
            else:
                lateness.append(max(0.0, at - eta))
        sys.stderr.write(
            "\n  [delays: {}] {} tasks; outages {}; lateness after the ETA: {}; "
            "due during an outage or its backlog, after it ended: {}\n".format(
                label,
                len(etas),
                ", ".join("{:.1f}s".format(e - s) for s, e in outages) or "none",
                lateness_report(lateness),
                lateness_report(after_outage),
            )
        )
        self.assertEqual(early, [], "tasks ran before their ETA (seconds early)")
        self.assertEqual(late, [], "tasks ran late (seconds after they were due)")

    async def test_countdowns_across_restarts(self) -> None:
        """
        Tasks with countdowns from 0.1 to 5 s all arrive, none before its
        ETA, each within a second of being due:

          1. while a worker restarts (one of two: a rolling restart, so
             every task is due at its ETA);
          2. while the broker application stops and starts (quorum levels
             dead-letter at-least-once, so nothing waiting is lost; a task
             that fell due while it was down is due when the worker is
             back).
        """
        count = int(os.environ.get("TXMSG_DELAY_TASKS", "1000"))
        first, second = self.worker(), self.worker()

        # 1. A worker restarts while tasks wait and come due.
        etas = await self.submit(range(count // 2))
        time.sleep(1.0)
        first.terminate()
        first = self.worker()
        self.check(etas, [], "worker restart")

        # 2. The broker restarts while tasks wait and come due.
        etas = await self.submit(range(count // 2, count))
        time.sleep(0.5)
        before = [w.log().count("is open") for w in (first, second)]
        down = time.time()
        self.broker.ctl("stop_app")
        self.broker.ctl("start_app")
        self.broker.ctl("await_startup")
        wait_until(
            lambda: all(
                w.log().count("is open") > n for w, n in zip((first, second), before, strict=True)
            ),
            30,
            "the workers to reconnect",
        )
        self.check(etas, [(down, time.time())], "broker restart")
        first.assert_running()
        second.assert_running()
        self.assertEqual(sorted(self.arrivals()), list(range(count)))
