# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: a C{twistd -n txmsg-worker --redis} process controlled
over its Redis channel C{rq:pubsub:<name>} (RQ's own functions and the
control CLI), and its entry in the worker roster.
"""

from __future__ import annotations

import json
import subprocess
import sys

from rq.command import send_shutdown_command
from twisted.trial.unittest import TestCase

from tests._amqp_support import ROOT
from tests._redis_support import redis_py
from tests._streams_support import RedisBroker
from tests._worker_support import (
    REDIS_URL,
    AMQPBroker,
    WorkerProcess,
    unique,
    wait_until,
    worker_env,
)
from txmsg.worker.roster import WORKERS_KEY, worker_key


def control(name: str, command: str, *args: str) -> dict:
    """
    C{python -m txmsg.redis.control_cli NAME COMMAND}: the worker's reply.
    """
    r = subprocess.run(
        [sys.executable, "-m", "txmsg.redis.control_cli", "--redis", REDIS_URL, name, command]
        + list(args),
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode != 0:
        raise AssertionError(
            "control {} failed ({}): {}{}".format(command, r.returncode, r.stdout, r.stderr)
        )
    return json.loads(r.stdout)


class ControlTests(AMQPBroker, TestCase):
    """
    The control channel and the worker roster of a running worker.
    """

    timeout = 90

    def setUp(self) -> None:
        self.require()
        self.redis = redis_py()
        self.queue = unique("txmsg-worker-control")
        self.name = unique("txmsg-test-worker")
        self.addCleanup(self.delete_queues, [self.queue])
        self.addCleanup(self.redis.srem, WORKERS_KEY, self.name)
        self.addCleanup(self.redis.delete, worker_key(self.name))
        self.worker = WorkerProcess(
            [self.queue],
            "--redis",
            REDIS_URL,
            "--name",
            self.name,
            ready="Listening for control commands on rq:pubsub:" + self.name,
            broker_args=self.broker_args(),
        )
        self.addCleanup(self.worker.cleanup)
        self.worker.start()
        wait_until(
            lambda: (
                "Consuming {} (".format(self.queue) in self.worker.log()
                and self.redis.pubsub_numsub("rq:pubsub:" + self.name)[0][1] == 1
            ),
            10,
            "the worker to consume and subscribe",
        )
        self.client = self.make_client()
        self.addCleanup(self.client.close)

    def test_ping_status_and_rq_shutdown(self) -> None:
        """
        C{ping} and C{status} over the control channel answer with the
        worker's name, queues, running tasks and counts; RQ's own
        C{send_shutdown_command} then stops the worker: it drains the running
        task (its result is delivered), exits 0 with a clean log, and leaves
        the worker roster.
        """
        ping = control(self.name, "ping")
        self.assertTrue(ping["ok"], ping)
        task_id = self.client.submit(self.queue, "wait", 1.5)
        wait_until(lambda: self.client.count(self.queue) == 0, 10, "the task to be taken")
        status = control(self.name, "status")["result"]
        self.assertEqual(status["name"], self.name)
        self.assertEqual(status["pid"], self.worker.pid)
        self.assertEqual(status["queues"], [self.queue])
        self.assertEqual(status["state"], "running")
        self.assertEqual([r["id"] for r in status["running"]], [task_id])
        self.assertEqual(status["counts"]["running"], 1)

        send_shutdown_command(self.redis, self.name)
        status = self.worker.process.wait(20)
        self.assertEqual(status, 0, self.worker.log())
        self.worker.assert_clean_stop(status)
        self.assertIn("Shutdown requested over the control channel", self.worker.log())
        [(correlation_id, body, _)] = self.client.collect(1, 5)
        self.assertEqual((correlation_id, body["status"]), (task_id, "ok"))
        self.assertEqual(self.client.count(self.queue), 0)
        self.assertFalse(self.redis.sismember(WORKERS_KEY, self.name))
        self.assertIsNone(self.redis.get(worker_key(self.name)))

    def test_worker_roster(self) -> None:
        """
        From its first heartbeat, written at start, the worker is in
        C{txmsg:workers} and C{txmsg:worker:<name>} holds its status with a
        TTL of three heartbeats; a clean SIGTERM stop removes both.
        """
        wait_until(
            lambda: self.redis.get(worker_key(self.name)) is not None, 5, "the first heartbeat"
        )
        self.assertTrue(self.redis.sismember(WORKERS_KEY, self.name))
        entry = json.loads(self.redis.get(worker_key(self.name)))
        self.assertEqual(entry["name"], self.name)
        self.assertEqual(entry["pid"], self.worker.pid)
        self.assertEqual(entry["queues"], [self.queue])
        self.assertEqual(entry["state"], "running")
        self.assertIn("uptime", entry)
        ttl = self.redis.ttl(worker_key(self.name))
        self.assertTrue(0 < ttl <= 15, ttl)

        self.worker.assert_clean_stop(self.worker.terminate())
        self.assertFalse(self.redis.sismember(WORKERS_KEY, self.name))
        self.assertIsNone(self.redis.get(worker_key(self.name)))


class ControlRedisTests(RedisBroker, ControlTests):
    """
    The same on Redis Streams (the broker's Redis is the control channel's).
    """
