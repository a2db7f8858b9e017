# Copyright (c) txmsg contributors. See LICENSE for details.
"""
txmsg's key-slot function against a real Redis in cluster mode (C{CLUSTER
KEYSLOT} needs no slots assigned, so one private node is enough), and the
delay and list queues' keys as Redis itself hashes them.
"""

from __future__ import annotations

import os
import random
import string

from twisted.trial.unittest import TestCase

from tests._redis_support import RedisServer, free_port
from txmsg.redis.delay_queue import DelayQueue
from txmsg.redis.list_queue import ReliableQueue
from txmsg.redis.slots import key_slot


class ClusterKeySlotTests(TestCase):
    """L{key_slot} agrees with C{CLUSTER KEYSLOT}."""

    def setUp(self) -> None:
        self.server = RedisServer(
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes-{}.conf".format(os.getpid()),
            # the bus port defaults to port + 10000, past 65535 for a high free port
            "--cluster-port",
            str(free_port()),
        )
        self.server.start()
        self.addCleanup(self.server.stop)
        import redis

        self.client = redis.Redis(port=self.server.port, socket_timeout=5)

    def redis_slot(self, key: str) -> int:
        return int(self.client.execute_command("CLUSTER", "KEYSLOT", key))

    def test_random_keys(self) -> None:
        """500 random keys, braces included, hash to Redis's own slots."""
        rng = random.Random(1234)
        alphabet = string.ascii_letters + string.digits + "{}:-_ é"
        keys = [
            "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25))) for _ in range(500)
        ]
        self.assertEqual([key_slot(k) for k in keys], [self.redis_slot(k) for k in keys])

    def test_queue_keys_one_slot(self) -> None:
        """Redis puts all of a delay queue's and a list queue's keys in one slot."""
        q = DelayQueue(None, "jobs", reactor=object())  # type: ignore[arg-type]
        r = ReliableQueue(None, "jobs", reactor=object())  # type: ignore[arg-type]
        rq = ReliableQueue(None, "rq:queue:default", namespace="", reactor=object())  # type: ignore[arg-type]
        for keys in (
            [q.due_key, q.processing_key, q.items_key, q.attempts_key, q.dead_key, r.key],
            [r.key, r.dead_key, r.consumers_key, r.processing_key("a"), r.heartbeat_key("a")],
            [rq.key, rq.dead_key, rq.consumers_key, rq.processing_key("a")],
        ):
            self.assertEqual(len({self.redis_slot(k) for k in keys}), 1, keys)
