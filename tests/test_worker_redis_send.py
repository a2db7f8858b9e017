# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests of sending to a worker on Redis Streams from clients
(L{txmsg.worker.TaskClient} with a C{redis://} URL, C{txmsg send --broker
redis://}) with priorities (C{--max-priority}: a level stream each),
countdowns and ETAs (the delay set), against the real Redis and a
C{twistd -n txmsg-worker --broker redis://...} process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests._amqp_support import ROOT
from tests._streams_support import REDIS_URL, RedisBroker
from tests._worker_support import OneQueueMixin, worker_env
from txmsg.worker.client import TaskClient
from txmsg.worker.handles import TaskRef


class RedisSendTests(RedisBroker, OneQueueMixin, TestCase):
    """
    One worker at prefetch 1 with C{--max-priority 10} and a results store.
    """

    timeout = 90
    queue_prefix = "txmsg-streams-send"

    def setUp(self) -> None:
        super().setUp()
        self.w = self.worker(
            "--max-priority", "10", "--prefetch", "1", "--concurrency", "1",
            "--results", REDIS_URL,
        )  # fmt: skip

    def test_priority_countdown_and_cli(self) -> None:
        """
        A high-priority task sent behind 200 low-priority ones while the
        worker is busy runs next; a task sent with a countdown of 1 s
        starts no earlier than its ETA and within 1 s after (from
        L{TaskClient} and from C{txmsg send --countdown 1}); C{call}
        returns the result through the results store.
        """
        return Deferred.fromCoroutine(self._scenario())

    async def _scenario(self) -> None:
        client = await TaskClient.connect(REDIS_URL, queue=self.queue, results=REDIS_URL)
        self.addCleanup(client.stopService)
        busy = await client.send("sleep", (2,))
        low = await gatherResults([client.send("square", (i,), priority=0) for i in range(200)])
        high = await client.send("square", (-1,), priority=9)
        await gatherResults([ref.result(timeout=60) for ref in [busy, high, *low]])
        started = {ref.id: (await ref.status()).started for ref in [busy, high, *low]}
        first_low = min(started[ref.id] for ref in low)
        self.assertLess(started[busy.id], started[high.id])
        self.assertLess(started[high.id], first_low, "the high-priority task ran next")

        # A countdown from the client: not early, at most 1 s late.
        sent = time.time()
        ref = await client.send("square", (3,), countdown=1.0)
        self.assertEqual((await ref.result(timeout=15))["value"], 9)
        began = (await ref.status()).started
        self.assertGreaterEqual(began, sent + 1.0)
        self.assertLess(began, sent + 2.0)

        # call() waits for the result in the store.
        self.assertEqual((await client.call("square", (5,), timeout=15))["value"], 25)

        # txmsg send --broker redis:// --countdown 1
        before = time.time()
        done = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "txmsg"), "send", "square", "4",
             "--queue", self.queue, "--broker", REDIS_URL, "--countdown", "1",
             "--priority", "3"],
            cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=45,
        )  # fmt: skip
        after = time.time()
        self.assertEqual(done.returncode, 0, done.stderr)
        cli: TaskRef[Any] = TaskRef(done.stdout.strip(), "square", client.results)
        self.assertEqual((await cli.result(timeout=15))["value"], 16)
        began = (await cli.status()).started
        self.assertGreaterEqual(began, before + 1.0)
        self.assertLess(began, after + 1.0 + 1.0)
        self.w.assert_clean_stop(self.w.terminate())
