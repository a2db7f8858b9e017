# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration test: replies to RabbitMQ's direct reply-to are not reported as
lost when the caller got them.
"""

from __future__ import annotations

import json
import subprocess

from twisted.trial.unittest import TestCase

from tests._amqp_support import ROOT, SHARED_URL
from tests._process import script
from tests._worker_support import OneQueueMixin, worker_env


class DirectReplyToTests(OneQueueMixin, TestCase):
    """
    C{txmsg send --wait} (direct reply-to) against C{twistd txmsg-worker}.
    """

    timeout = 120
    queue_prefix = "txmsg-replies-test"

    def test_hundred_waited_tasks_no_lost_reply_warning(self) -> None:
        """
        100 tasks sent with C{--wait} all get their result, and the worker
        logs no "lost" (or, as before, "unroutable") reply warning: with
        RabbitMQ before 4.2 the broker returns every mandatory reply to a
        direct reply-to name although it delivered it.
        """
        worker = self.worker("--prefetch", "10")
        done = subprocess.run(
            [
                script("txmsg"),
                "send",
                "square",
                "7",
                "--queue",
                self.queue,
                "--wait",
                "--count",
                "100",
                "--amqp",
                SHARED_URL,
            ],
            cwd=ROOT,
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=90,
        )
        self.assertEqual(done.returncode, 0, done.stderr + done.stdout)
        results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        self.assertEqual(len(results), 100, done.stdout)
        self.assertEqual({r["value"] for r in results}, {49}, done.stdout)
        log = worker.log()
        self.assertEqual(log.count("was lost"), 0, log)
        self.assertEqual(log.count("unroutable"), 0, log)
        worker.assert_clean_stop(worker.terminate())
