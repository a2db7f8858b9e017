# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: L{txmsg.redis.DelayQueue} against the real Redis.
"""

from __future__ import annotations

import json
import os
import random
import tempfile

from twisted.internet import defer, reactor, task

from tests._primitives_support import PrimitivesTestCase
from tests._redis_support import wait_for
from txmsg.redis import DelayQueue, ReliableQueue

N_ITEMS = 10_000
N_POLLERS = 3


class DelayQueueIntegrationTests(PrimitivesTestCase):
    """
    The delay queue's Lua scripts, several processes, real time.
    """

    async def test_pollers_in_separate_processes(self) -> None:
        """
        Three pollers in three processes share 10,000 items (due over the
        next 2 s, one in 50 failing once): every item is handled exactly
        once, none lost, none duplicated, and each process got some.
        """
        queue = DelayQueue(self.conn, "load", namespace=self.ns)
        outs = [tempfile.mktemp(prefix="txmsg-delay-") for _ in range(N_POLLERS)]
        self.addCleanup(lambda: [os.path.exists(o) and os.unlink(o) for o in outs])
        now = reactor.seconds()
        sem = defer.DeferredSemaphore(500)
        await defer.gatherResults(
            [
                sem.run(queue.schedule, str(i), at=now + 0.5 + random.random() * 2.0)
                for i in range(N_ITEMS)
            ]
        )
        children = [self.spawn("delay-poll", self.ns, "load", out) for out in outs]
        for child in children:
            await child.wait_output("polling")
        for child in children:
            self.assertEqual(await child.wait_exit(90), 0, child.output())
        results = [json.load(open(o)) for o in outs]
        handled = [p for r in results for p in r["handled"]]
        self.assertEqual(len(handled), N_ITEMS, "duplicates or losses")
        self.assertEqual(sorted(map(int, handled)), list(range(N_ITEMS)))
        self.assertEqual(sum(r["retried"] for r in results), N_ITEMS // 50)
        for r in results:
            self.assertGreater(len(r["handled"]), 0)
        self.assertEqual(await queue.counts(), {"due": 0, "processing": 0, "dead": 0})
        self.assertEqual(self.peer.hlen(queue.items_key), 0)

    async def test_crashed_claim_recovered(self) -> None:
        """
        An item claimed by a poller that died (no ack) is delivered again
        after its lease, with attempts=2: it survives the crash.
        """
        queue = DelayQueue(self.conn, "crash", namespace=self.ns)
        await queue.schedule({"order": 1})
        claim = await queue.claim(10, lease=0.5)
        self.assertEqual(len(claim.items), 1)
        got = []
        poller = queue.poller(got.append, max_sleep=5)
        poller.startService()
        self.addCleanup(poller.stopService)
        await wait_for(lambda: got, timeout=5)
        self.assertEqual((got[0].payload, got[0].attempts), ({"order": 1}, 2))

    async def test_dead_letter_and_wake(self) -> None:
        """
        A handler that always fails sends the item to C{P:dead} after
        C{max_attempts}; an earlier item scheduled by another queue object
        (another process) wakes a poller through pub/sub.
        """
        from txmsg.redis import PubSub

        pubsub = PubSub()
        pubsub.startService()
        self.addCleanup(pubsub.stopService)
        queue = DelayQueue(self.conn, "dead", namespace=self.ns)
        got = []

        def handle(item):
            got.append(item.payload)
            if item.payload == "bad":
                raise ValueError("always")

        poller = queue.poller(
            handle, pubsub=pubsub, max_sleep=30, max_attempts=2, backoff=lambda n: 0.1
        )
        poller.startService()
        self.addCleanup(poller.stopService)
        await task.deferLater(reactor, 0.3, lambda: None)  # subscribed, asleep for 30 s
        other = DelayQueue(self.conn, "dead", namespace=self.ns)  # no local wake-up
        await other.schedule("bad")
        await other.schedule("good", delay=0.2)
        await wait_for(lambda: "good" in got and self.peer.llen(queue.dead_key) == 1, timeout=5)
        envelope = json.loads(self.peer.lrange(queue.dead_key, 0, -1)[0])
        self.assertEqual((envelope["payload"], envelope["attempts"]), ('"bad"', 2))
        self.flushLoggedErrors(ValueError)

    async def test_move_to_list_queue(self) -> None:
        """
        A poller with C{target=} moves due payloads into a list queue.
        """
        queue = DelayQueue(self.conn, "mv", namespace=self.ns)
        work = ReliableQueue(self.conn, "work", namespace=self.ns)
        for i in range(5):
            await queue.schedule(i, delay=0.1 * i)
        poller = queue.poller(target=work, max_sleep=5)
        poller.startService()
        self.addCleanup(poller.stopService)
        await wait_for(lambda: self.peer.llen(work.key) == 5, timeout=5)
        got = []
        await work.consume(got.append, mode="burst").done
        self.assertEqual(got, [0, 1, 2, 3, 4])
