# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.slots}, and that every multi-key command and script
of the delay and list queues keeps its keys in one Redis Cluster slot.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis.delay_queue import DelayQueue
from txmsg.redis.limits import RateLimit, parse_rate
from txmsg.redis.list_queue import ReliableQueue
from txmsg.redis.slots import crc16, hash_tag, key_slot, same_slot, tagged_prefix
from txmsg.schedule.leader import schedule_keys
from txmsg.test import test_redis_delay_queue, test_redis_list_queue
from txmsg.test._optional import fuzz

# (key, slot) pairs printed by CLUSTER KEYSLOT on Redis 7 (tests/
# test_redis_cluster_slots.py checks many more against a live server).
KNOWN_SLOTS = [
    ("foo", 12182),
    ("bar", 5061),
    ("hello", 866),
    ("{user1000}.following", 3443),
    ("{user1000}.followers", 3443),
    ("user1000", 3443),
    ("foo{}{bar}", 8363),
    ("foo{{bar}}zap", 4015),
    ("foo{bar}{zap}", 5061),
    ("", 0),
]


class SlotTests(SynchronousTestCase):
    """CRC16 and the hash-tag rules."""

    def test_crc16_vector(self) -> None:
        """The Redis Cluster specification's check value: CRC16("123456789") = 0x31C3."""
        self.assertEqual(crc16(b"123456789"), 0x31C3)

    def test_known_slots(self) -> None:
        """Slots match what Redis computes, hash tags included."""
        self.assertEqual([(k, key_slot(k)) for k in dict(KNOWN_SLOTS)], KNOWN_SLOTS)

    def test_hash_tag_rules(self) -> None:
        """The first {...} with content is the tag; empty braces are not."""
        self.assertEqual(hash_tag(b"a{b}c{d}"), b"b")
        self.assertEqual(hash_tag(b"a{}b{c}"), b"a{}b{c}")
        self.assertEqual(hash_tag(b"a{b"), b"a{b")

    def test_tagged_prefix(self) -> None:
        """A prefix's derived keys share a slot, with or without a namespace."""
        for prefix in (tagged_prefix("delay", "jobs"), tagged_prefix("", "jobs")):
            self.assertTrue(same_slot([prefix + ":due", prefix + ":items", prefix + ":x:y"]))

    @fuzz(lambda st: st.text(max_size=30), lambda st: st.text(max_size=30))
    def test_any_name_one_slot(self, namespace: str, name: str) -> None:
        """Whatever the namespace and name, a queue's keys share a slot (or it is refused)."""
        if not name or any(c in namespace + name for c in "{}"):
            self.assertRaises(ValueError, DelayQueue, None, name, namespace=namespace)
            self.assertRaises(ValueError, ReliableQueue, None, name, namespace=namespace)
            return
        q = DelayQueue(None, name, namespace=namespace, reactor=object())  # type: ignore[arg-type]
        keys = [q.due_key, q.processing_key, q.items_key, q.attempts_key, q.dead_key]
        self.assertTrue(same_slot(keys))
        r = ReliableQueue(None, name, namespace=namespace, reactor=object())  # type: ignore[arg-type]
        keys = [r.key, r.dead_key, r.consumers_key, r.processing_key("c"), r.heartbeat_key("c")]
        self.assertTrue(same_slot(keys))

    def test_other_scripts_tagged(self) -> None:
        """The rate limit's and the scheduler lease's scripts keep one slot too."""
        self.assertTrue(same_slot(RateLimit(None, "send", parse_rate("10/s")).keys))
        self.assertTrue(same_slot(schedule_keys("nightly")))

    def test_rq_key_kept(self) -> None:
        """Without a namespace a list queue's key is the name itself (RQ's keys)."""
        r = ReliableQueue(None, "rq:queue:default", namespace="", reactor=object())  # type: ignore[arg-type]
        self.assertEqual(r.key, "rq:queue:default")
        self.assertEqual(key_slot(r.key), key_slot(r.processing_key("c")))


def _keys_of(args: tuple) -> list[Any]:
    """The keys of a multi-key command, or [] for the others."""
    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA"):
        return list(args[3 : 3 + int(args[2])])
    if name in ("LMOVE", "BLMOVE", "RPOPLPUSH", "BRPOPLPUSH"):
        return list(args[1:3])
    return []


def _check_slots(test: Any) -> None:
    """Make C{test.redis} fail the test on a multi-key command spanning slots."""
    redis = test.redis
    original = redis.execute_command

    def checked(*args: Any, **kw: Any) -> Any:
        keys = _keys_of(args)
        if not same_slot(keys):
            test.fail(f"{args[0]} keys span slots: {keys!r}")
        return original(*args, **kw)

    redis.execute_command = checked


class DelayQueueSlotTests(test_redis_delay_queue.DelayQueueTests):
    """Every delay-queue test again, each script's keys checked for one slot."""

    def setUp(self) -> None:
        super().setUp()
        _check_slots(self)

    def test_move_to_list_queue(self) -> None:
        """Moving to a list queue stays in one slot when both have the same name."""
        self.queue = DelayQueue(self.redis, "work", reactor=self.clock)
        target = ReliableQueue(self.redis, "work", reactor=self.clock)
        self.successResultOf(self.queue.schedule("a", delay=1))
        p = self.queue.poller(target=target, max_sleep=60)
        p.startService()
        self.pollers.append(p)
        self.clock.advance(2)
        self.assertEqual(self.redis.raw("queue:{work}"), [b'"a"'])


class ReliableQueueSlotTests(test_redis_list_queue.ReliableQueueTests):
    """Every list-queue test again, each multi-key command checked for one slot."""

    def setUp(self) -> None:
        super().setUp()
        _check_slots(self)
