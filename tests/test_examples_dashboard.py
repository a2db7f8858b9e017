# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Run C{examples/dashboard_embed.py} (the dashboard mounted in a site of one's
own) against the real RabbitMQ and check what it prints.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pika
from twisted.trial.unittest import SynchronousTestCase

from tests._amqp_support import ROOT, SHARED_URL, require_broker, unique


class DashboardEmbedExampleTests(SynchronousTestCase):
    """
    C{examples/dashboard_embed.py --once}.
    """

    def test_output(self) -> None:
        """
        The embedded dashboard's JSON overview shows the queue's depth.
        """
        require_broker()
        queue = unique("dash-embed")
        connection = pika.BlockingConnection(pika.URLParameters(SHARED_URL))
        self.addCleanup(connection.close)
        channel = connection.channel()
        channel.queue_declare(queue, auto_delete=False)
        self.addCleanup(channel.queue_delete, queue)
        for n in range(2):
            channel.basic_publish("", queue, b"x%d" % n)
        proc = subprocess.run(
            [sys.executable, os.path.join("examples", "dashboard_embed.py"), queue, "--once"],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT, TXMSG_AMQP_URL=SHARED_URL),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.splitlines(), ["{} ready: 2 consumers: 0".format(queue)])
