# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.delay_levels}: ticks, routing keys, binding patterns.
"""

from __future__ import annotations

from fractions import Fraction

from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp import delay_levels as dl
from txmsg.test._optional import fuzz
from txmsg.testing._amqp_routing import route_topic

DAY = 86400.0


class TicksTests(SynchronousTestCase):
    def test_rounds_up_to_the_tick(self) -> None:
        """Delays round up to whole 100 ms ticks; decimal floats are not pushed up a tick."""
        self.assertEqual(
            [dl.ticks(d) for d in (0.1, 0.3, 0.9, 0.11, 0.19, 1.0, 7.3, 0.30000000000000004)],
            [1, 3, 9, 2, 2, 10, 73, 3],
        )

    def test_no_wait(self) -> None:
        """Zero and negative delays (an ETA in the past) wait 0 ticks."""
        self.assertEqual([dl.ticks(0), dl.ticks(-5.0), dl.ticks(0.0000001)], [0, 0, 0])

    def test_longest(self) -> None:
        """The longest delay is 2**25 - 1 ticks (over 38 days); longer is refused."""
        self.assertEqual(dl.ticks(dl.MAX_DELAY), 2**25 - 1)
        self.assertGreater(dl.MAX_DELAY, 38 * DAY)
        e = self.assertRaises(dl.DelayTooLong, dl.ticks, dl.MAX_DELAY + 0.1)
        self.assertIn("38.8 days", str(e))

    def test_nonsense(self) -> None:
        """NaN and infinity are refused."""
        for bad in (float("nan"), float("inf")):
            self.assertRaises(ValueError, dl.ticks, bad)

    @fuzz(lambda st: st.floats(min_value=0.1, max_value=38 * DAY))
    def test_never_early_at_most_a_tick_late(self, delay: float) -> None:
        """The wait is never shorter than the delay (to the microsecond) nor a tick longer."""
        wait = dl.ticks(delay) * dl.TICK
        self.assertGreaterEqual(wait, Fraction(delay) - Fraction(1, 2_000_000))
        self.assertLess(wait, Fraction(delay) + dl.TICK)


class KeyTests(SynchronousTestCase):
    def test_encode(self) -> None:
        """The key is the tick count in binary, most significant bit first, then the queue."""
        self.assertEqual(dl.encode(11, "tasks"), "0." * 21 + "1.0.1.1.tasks")
        self.assertEqual(dl.decode(dl.encode(11, "a.b.c")), (11, "a.b.c"))

    def test_decode_refuses(self) -> None:
        """Keys that are not delay keys are refused."""
        for key in ("tasks", "0.1.tasks", "2." * 25 + "q", "0." * 25):
            self.assertRaises(ValueError, dl.decode, key)

    def test_destinations(self) -> None:
        """Names the key cannot carry are refused with the reason."""
        self.assertIn("too long", str(self.assertRaises(ValueError, dl.encode, 1, "q" * 210)))
        self.assertIn("'*'", str(self.assertRaises(ValueError, dl.encode, 1, "a.*.b")))
        self.assertRaises(ValueError, dl.encode, 1, "")
        self.assertRaises(ValueError, dl.encode, 2**25, "q")
        dl.encode(1, "q" * 205)

    def test_levels(self) -> None:
        """TTLs double per level; names are zero-padded; levels out of range are refused."""
        self.assertEqual([dl.level_ttl_ms(n) for n in (0, 1, 24)], [100, 200, 100 * 2**24])
        self.assertEqual(dl.level_name("p", 3), "p.03")
        self.assertRaises(ValueError, dl.level_ttl_ms, 25)
        self.assertRaises(ValueError, dl.binding_key, 0, 2)
        self.assertEqual((dl.first_level(0), dl.first_level(1), dl.first_level(11)), (None, 0, 3))
        self.assertEqual(dl.path(11), [3, 1, 0])

    @fuzz(
        lambda st: st.integers(min_value=0, max_value=2**25 - 1),
        lambda st: st.from_regex(r"[a-z0-9_-]{1,8}(\.[a-z0-9_-]{1,8}){0,3}", fullmatch=True),
    )
    def test_routing_walk(self, n: int, queue: str) -> None:
        """
        Walking the key through the level exchanges (as RabbitMQ routes the
        topic patterns) waits in exactly the levels of its set bits, whose
        TTLs add up to its ticks, and ends at the queue's deliver binding.
        """
        key = dl.encode(n, queue)
        self.assertEqual(dl.decode(key), (n, queue))
        waited = []
        for level in range(dl.LEVELS - 1, -1, -1):
            to_queue = route_topic(dl.binding_key(level, 1), key)
            onward = route_topic(dl.binding_key(level, 0), key)
            self.assertNotEqual(to_queue, onward)
            if to_queue:
                waited.append(level)
        self.assertEqual(waited, dl.path(n))
        self.assertEqual(sum(dl.level_ttl_ms(level) for level in waited), n * 100)
        self.assertTrue(route_topic(dl.deliver_binding_key(queue), key))
        # Neither a longer name nor a dotted suffix of this one matches.
        self.assertFalse(route_topic(dl.deliver_binding_key("x." + queue), key))
        self.assertFalse(route_topic(dl.deliver_binding_key(queue + ".x"), key))
        if "." in queue:
            suffix = queue.split(".", 1)[1]
            self.assertFalse(route_topic(dl.deliver_binding_key(suffix), key))

    def test_suffix_queues_do_not_collide(self) -> None:
        """Queue C{b} does not get the messages of queue C{a.b}."""
        self.assertFalse(route_topic(dl.deliver_binding_key("b"), dl.encode(3, "a.b")))
