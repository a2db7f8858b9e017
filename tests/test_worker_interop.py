# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: C{twistd -n txmsg-worker} against the seeds' blocking pika
programs (S13 work queue, S16 RPC) and a plain-pika RPC call of a v1 task.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from tests._amqp_support import Proc, env
from tests._worker_support import (
    Client,
    WorkerProcess,
    delete_worker_queues,
    require_broker,
    unique,
    wait_until,
)

SEEDS = os.path.join("tests", "seed_programs")


def seed(name: str) -> str:
    return os.path.join(SEEDS, name + ".py")


class SeedInteropTests(TestCase):
    """
    One worker serves the seeds' plain work queue and RPC queue (raw
    handlers from C{examples/worker_raw.py}) and a v1 task queue
    (C{examples/worker_tasks.py}).
    """

    timeout = 90

    def setUp(self) -> None:
        require_broker()
        self.work = unique("txmsg-worker-seedwork")
        self.rpc = unique("txmsg-worker-seedrpc")
        self.tasks = unique("txmsg-worker-seedtasks")
        self.addCleanup(delete_worker_queues, [self.work, self.rpc, self.tasks])
        self.worker = WorkerProcess(
            [self.tasks],
            "--raw-handler",
            self.work + "=examples.worker_raw:work",
            "--raw-handler",
            self.rpc + "=examples.worker_raw:fib",
            tasks="examples.worker_tasks",
            ready="Consuming {} (".format(self.rpc),
        )
        self.addCleanup(self.worker.cleanup)
        self.worker.start()
        wait_until(
            lambda: all(
                "Consuming {} (".format(q) in self.worker.log()
                for q in (self.work, self.rpc, self.tasks)
            ),
            10,
            "all three consumers",
        )
        self.client = Client()
        self.addCleanup(self.client.close)
        # Runs first (cleanups are LIFO): the worker stops cleanly after each test.
        self.addCleanup(lambda: self.worker.assert_clean_stop(self.worker.terminate()))

    def run_seed(self, name: str, queue: str, *args: str) -> str:
        p = Proc([seed(name)] + list(args), env(SEED_NAME=queue))
        self.addCleanup(p.kill)
        return p.finish(30)

    def test_seed_new_task_feeds_raw_worker(self) -> None:
        """
        The seed's blocking C{new_task.py} feeds the worker's raw handler (one
        second per dot); the message is acked after the work.
        """
        out = self.run_seed("new_task", self.work, "two", "dots..")
        self.assertIn(" [x] Sent 'two dots..'", out)
        wait_until(lambda: " [x] Done" in self.worker.log(), 10, "the work to be done")
        self.assertIn(" [x] Received b'two dots..'", self.worker.log())
        self.assertEqual(self.client.count(self.work), 0)

    def test_seed_rpc_client_calls_raw_fib(self) -> None:
        """
        The seed's blocking C{rpc_client.py} calls the raw C{fib} handler and
        gets fib(30) back.
        """
        out = self.run_seed("rpc_client", self.rpc, "30")
        self.assertIn(" [.] Got 832040", out)
        self.assertIn(" [.] fib(30)", self.worker.log())

    def test_plain_pika_rpc_of_v1_task(self) -> None:
        """
        A plain pika client calls the v1 task C{fib} with C{reply_to} and
        C{correlation_id} and gets the v1 reply; the task queue is empty
        afterwards.
        """
        task_id = self.client.submit(self.tasks, "fib", 30)
        [(correlation_id, body, _)] = self.client.collect(1, 10)
        self.assertEqual(correlation_id, task_id)
        self.assertEqual(body, {"id": task_id, "status": "ok", "result": 832040})
        self.assertEqual(self.client.count(self.tasks), 0)
