# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{examples/app.tac}: txmsg's services embedded in one Twisted application,
run with C{twistd -ny}.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.request
import uuid

import pika
import redis
from twisted.trial.unittest import SynchronousTestCase

from tests._process import TwistdProcess, free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class AppTacTests(SynchronousTestCase):
    """
    The example application: echo, a Redis subscription into the registry,
    a worker and a health endpoint on one reactor.
    """

    def test_all_parts_work_together(self) -> None:
        """
        The echo server echoes, a Redis message becomes an event handled by
        the app, a task submitted over AMQP comes back with its result,
        /ready says 200, and SIGTERM drains the worker, removes it from the
        worker registry and closes the AMQP connection before the shared
        Redis connection stops.
        """
        queue = "tac-" + uuid.uuid4().hex[:8]
        echo_port, health_port = free_port(), free_port()
        env = dict(
            os.environ,
            PYTHONPATH=ROOT,
            TXMSG_APP_ECHO_PORT=str(echo_port),
            TXMSG_APP_HEALTH_PORT=str(health_port),
            TXMSG_APP_QUEUE=queue,
        )
        app = TwistdProcess(
            "-y", [os.path.join(ROOT, "examples", "app.tac")], ready="Consuming " + queue, env=env
        )
        self.addCleanup(app.cleanup)
        self.addCleanup(self.delete_queues, queue)
        app.start(timeout=30)

        with socket.create_connection(("127.0.0.1", echo_port), timeout=10) as s:
            s.sendall(b"embedded")
            self.assertEqual(s.recv(100), b"embedded")
        wait_for(lambda: "echo client connected" in app.log(), 10, "the echo event")

        r = redis.Redis()
        wait_for(lambda: r.publish("app.news", "hello from redis") > 0, 10, "the subscription")
        wait_for(lambda: "news: hello from redis" in app.log(), 10, "the news event")

        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        self.addCleanup(connection.close)
        channel = connection.channel()
        replies = []
        # Direct reply-to: consume amq.rabbitmq.reply-to before publishing.
        channel.basic_consume(
            "amq.rabbitmq.reply-to", lambda ch, m, p, body: replies.append(body), auto_ack=True
        )
        channel.basic_publish(
            "",
            queue,
            json.dumps({"task": "add", "args": [20, 22], "kwargs": {}, "id": "tac-2"}),
            pika.BasicProperties(
                content_type="application/json",
                reply_to="amq.rabbitmq.reply-to",
                correlation_id="c2",
            ),
        )
        connection.process_data_events(time_limit=0)
        wait_for(lambda: connection.process_data_events(time_limit=0.1) or replies, 15, "the reply")
        self.assertEqual(json.loads(replies[0]), {"id": "tac-2", "status": "ok", "result": 42})

        with urllib.request.urlopen(
            "http://127.0.0.1:{}/ready".format(health_port), timeout=10
        ) as response:
            self.assertEqual(response.status, 200)
        app.assert_clean_stop(app.terminate())
        self.assert_drained(app.log(), queue)

    def assert_drained(self, log: str, queue: str) -> None:
        """
        The worker drained, left the worker registry and closed its AMQP
        connection before the shared Redis connection went down.
        """
        # twistd's prefix: "<timestamp> [<namespace>] "
        lines = [re.sub(r"^\S+ \[[^\]]*\] ", "", line) for line in log.splitlines()]
        expected = [
            "Worker app-worker drained",
            "Worker app-worker removed from the worker registry",
            "AMQP connection to amqp://guest:***@127.0.0.1:5672/%2F lost: "
            "pika.exceptions.ConnectionClosedByClient: (200, 'Normal shutdown')",
            "Worker app-worker stopped",
            "Redis commands connection closed: redis://127.0.0.1:6379/0",
        ]
        positions = []
        for text in expected:
            matches = [i for i, line in enumerate(lines) if line == text]
            self.assertTrue(matches, "no log line {!r} in:\n{}".format(text, log))
            positions.append(matches[0])
        self.assertEqual(positions, sorted(positions), "out of order:\n" + log)
        self.assertNotIn("non-clean fashion", log)
        self.assertNotIn("Scheduling retry", log)
        self.assertNotIn("failed", log.split("Received SIGTERM")[-1])
        self.assertIsNone(redis.Redis().get("txmsg:worker:app-worker"))

    def delete_queues(self, queue: str) -> None:
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        channel = connection.channel()
        for name in [queue, queue + ".dead"]:
            channel.queue_delete(name)
        connection.close()
