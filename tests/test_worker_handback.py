# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests on a real RabbitMQ with C{twistd -n txmsg-worker}
processes: a graceful restart does not use up the delivery cap of tasks that
never started, and a forged direct reply-to name does not cost the worker
its connection.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid

import pika
from twisted.trial.unittest import TestCase

from tests._streams_support import RedisBroker
from tests._worker_support import OneQueueMixin, wait_until

SLOW = 2.0


class GracefulRestartTests(OneQueueMixin, TestCase):
    """
    SIGTERM with tasks queued behind a busy thread pool.
    """

    timeout = 120
    queue_prefix = "txmsg-worker-handback"

    def test_queued_tasks_run_once_after_restart(self) -> None:
        """
        A worker at prefetch 10 and concurrency 1 gets SIGTERM while nine
        C{max_retries=0} tasks wait behind the running one: the running one
        finishes within the grace period, the others go back to the queue
        uncounted, and a second worker runs each remaining task exactly once
        with none dead-lettered.
        """
        fd, path = tempfile.mkstemp(prefix="txmsg-handback-")
        os.close(fd)
        self.addCleanup(os.unlink, path)
        items = ["t{}".format(n) for n in range(10)]
        for item in items:
            self.client.submit(self.queue, "once", path, item, SLOW, reply=False)
        first = self.worker("--prefetch", "10", "--concurrency", "1", "--grace", "5")
        wait_until(lambda: self.client.count(self.queue) == 0, 10, "the worker to take the tasks")
        wait_until(lambda: os.path.getsize(path) > 0, 10, "the first task to start")
        first.assert_clean_stop(first.terminate(timeout=30))
        with open(path) as f:
            ran_first = f.read().splitlines()
        self.assertEqual(len(ran_first), 1, first.log())
        self.assertEqual(self.client.count(self.queue), 9)

        second = self.worker("--prefetch", "10", "--concurrency", "4")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(path) as f:
                if len(f.read().splitlines()) >= 10:
                    break
            time.sleep(0.2)
        time.sleep(SLOW + 1)  # the last ones finish and are acked
        with open(path) as f:
            ran = f.read().splitlines()
        self.assertEqual(sorted(ran), sorted(items))
        self.assertEqual(self.client.count(self.queue + ".dead"), 0, second.log())
        self.assertEqual(self.client.count(self.queue), 0)
        second.assert_clean_stop(second.terminate(timeout=30))


class StopUnderLoadTests(OneQueueMixin, TestCase):
    """
    SIGTERM while the broker is still sending tasks.
    """

    timeout = 120
    queue_prefix = "txmsg-worker-stopload"

    def test_tasks_on_their_way_not_counted(self) -> None:
        """
        2,000 C{max_retries=0} tasks (5 ms each on the reactor) through a
        worker at prefetch 100, stopped with SIGTERM while it drains them;
        a second worker runs the rest.  Every task runs exactly once and
        none is dead-lettered: the deliveries that were on their way when
        the first worker stopped went back uncounted (pika had rejected
        them, marking them redelivered, which counted as a run).
        """
        fd, path = tempfile.mkstemp(prefix="txmsg-stopload-")
        os.close(fd)
        self.addCleanup(os.unlink, path)
        items = ["t{}".format(n) for n in range(2000)]
        for item in items:
            self.client.submit(self.queue, "record_once", path, item, 0.005, reply=False)

        def done() -> int:
            with open(path) as f:
                return len(f.read().splitlines())

        first = self.worker("--prefetch", "100")
        wait_until(lambda: done() >= 300, 30, "the first worker to run 300 tasks")
        first.assert_clean_stop(first.terminate(timeout=30))
        self.assertLess(done(), len(items), "the first worker ran everything: nothing to check")
        second = self.worker("--prefetch", "100")
        dead = self.queue + ".dead"
        wait_until(
            lambda: done() + self.client.count(dead) >= len(items),
            60,
            "every task to run or be dead-lettered",
        )
        second.assert_clean_stop(second.terminate(timeout=30))
        self.assertEqual(self.client.count(dead), 0, "tasks dead-lettered without running")
        with open(path) as f:
            ran = f.read().splitlines()
        self.assertEqual(sorted(ran), sorted(items))


class ForgedReplyToTests(OneQueueMixin, TestCase):
    """
    A task whose C{reply_to} is a forged direct reply-to name.
    """

    timeout = 60
    queue_prefix = "txmsg-worker-forged"

    def publish(self, channel: object, task_id: str, reply_to: str) -> None:
        body = json.dumps({"task": "square", "args": [3], "id": task_id}).encode()
        channel.basic_publish(  # type: ignore[attr-defined]
            "",
            self.queue,
            body,
            pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                correlation_id=task_id,
                reply_to=reply_to,
            ),
        )

    def test_forged_name_dead_lettered_connection_kept(self) -> None:
        """
        Tasks with C{reply_to} C{amq.rabbitmq.reply-to.garbage} and
        C{amq.rabbitmq.reply-to.abc.def} are dead-lettered as C{bad-headers},
        the worker keeps its connection (it connects once), and a following
        task with a real direct reply-to name gets its reply.
        """
        worker = self.worker()
        connection = pika.BlockingConnection()
        self.addCleanup(lambda: connection.is_open and connection.close())
        channel = connection.channel()
        replies: list[bytes] = []
        channel.basic_consume(
            "amq.rabbitmq.reply-to", lambda ch, m, p, body: replies.append(body), auto_ack=True
        )
        for forged in ("amq.rabbitmq.reply-to.garbage", "amq.rabbitmq.reply-to.abc.def"):
            self.publish(channel, uuid.uuid4().hex, forged)
        good = uuid.uuid4().hex
        self.publish(channel, good, "amq.rabbitmq.reply-to")
        deadline = time.monotonic() + 20
        while not replies and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        self.assertEqual([json.loads(r)["id"] for r in replies], [good], worker.log())
        dead = self.client.get_all(self.queue + ".dead")
        self.assertEqual(
            [p.headers["x-txmsg-reason"] for p, _ in dead], ["bad-headers", "bad-headers"]
        )
        log = worker.log()
        self.assertEqual(log.count("Connecting to AMQP broker"), 1, log)
        self.assertNotIn("INTERNAL_ERROR", log)
        worker.assert_running()
        worker.assert_clean_stop(worker.terminate())


class GracefulRestartRedisTests(RedisBroker, GracefulRestartTests):
    """
    The same on Redis Streams.
    """
