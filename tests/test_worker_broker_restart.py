# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration test: C{rabbitmqctl stop_app; start_app} while tasks flow
through a C{twistd -n txmsg-worker}.  A private RabbitMQ node is used, so
the shared broker (and other tests) are never disturbed.
"""

from __future__ import annotations

import os
import sys
import tempfile

import pika
from twisted.trial.unittest import TestCase

from tests._amqp_support import PrivateBroker
from tests._worker_support import Client, WorkerProcess, unique, wait_until


class BrokerRestartTests(TestCase):
    """
    The worker reconnects after a broker restart and every confirmed task
    completes.
    """

    timeout = 240

    def setUp(self) -> None:
        self.broker = PrivateBroker()
        self.addCleanup(self.broker.stop)
        self.broker.start()
        self.queue = unique("txmsg-worker-restart")
        fd, self.record = tempfile.mkstemp(prefix="txmsg-worker-restart-", suffix=".txt")
        os.close(fd)
        self.addCleanup(os.unlink, self.record)

    def recorded(self) -> list[int]:
        with open(self.record) as f:
            return [int(line) for line in f if line.strip()]

    def publish(self, client: Client, items: range, confirmed: set[int]) -> None:
        """
        Submit one C{record} task per item; those the broker confirmed go
        into C{confirmed}.  Stops at the first publish error (broker gone).
        """
        for i in items:
            try:
                client.submit(self.queue, "record", self.record, i, 0.02, reply=False)
            except (pika.exceptions.AMQPError, OSError):
                return
            confirmed.add(i)

    def test_stop_app_start_app_while_tasks_flow(self) -> None:
        """
        Tasks flow (each takes 20 ms, prefetch 4); the broker application is
        stopped and started again; more tasks are submitted after the
        restart.  The worker reconnects and drains the queue: every task
        whose publish was confirmed ran at least once.
        """
        worker = WorkerProcess([self.queue], "--prefetch", "4", url=self.broker.url)
        self.addCleanup(worker.cleanup)
        worker.start()
        confirmed: set[int] = set()
        client = Client(self.broker.url)
        self.publish(client, range(0, 400), confirmed)
        client.close()
        wait_until(lambda: len(self.recorded()) >= 20, 20, "tasks to flow")
        self.broker.ctl("stop_app")
        done_before = len(set(self.recorded()))
        self.broker.ctl("start_app")
        self.broker.ctl("await_startup")

        client = Client(self.broker.url)
        self.addCleanup(client.close)
        self.publish(client, range(400, 500), confirmed)
        self.assertEqual(len(confirmed), 500)
        try:
            wait_until(lambda: confirmed <= set(self.recorded()), 60, "every confirmed task to run")
        except AssertionError:
            missing = sorted(confirmed - set(self.recorded()))
            raise AssertionError(
                "{} confirmed task(s) never ran: {}\n{}".format(
                    len(missing), missing[:50], worker.log()
                )
            ) from None
        worker.assert_running()
        recorded = self.recorded()
        log = worker.log()
        self.assertGreater(log.count("AMQP connection"), 2, log)  # lost and reopened
        self.assertIn("is open", log.split("lost")[-1], "no reconnection:\n" + log)
        wait_until(lambda: client.count(self.queue) == 0, 10, "the queue to be empty")
        sys.stderr.write(
            "\n  [broker restart] confirmed={} done-before-restart={} runs={} duplicates={}\n".format(
                len(confirmed), done_before, len(recorded), len(recorded) - len(set(recorded))
            )
        )
        self.assertLess(done_before, 400, "the restart came after the work was done")
        status = worker.terminate()
        self.assertEqual(status, -15)
        self.assertIn("Server Shut Down.", worker.log())
