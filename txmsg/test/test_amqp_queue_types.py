# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.queue_types}.
"""

from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp.queue_types import (
    DEFAULT_DELIVERY_LIMIT,
    dead_letter_arguments,
    work_queue_arguments,
)
from txmsg.amqp.topology import Queue


class QueueTypeTests(SynchronousTestCase):
    """Arguments per queue type."""

    def test_untyped_unchanged(self) -> None:
        """Without a type, work and dead-letter queues get no arguments (as before)."""
        self.assertEqual(work_queue_arguments(None, "q.dead"), {})
        self.assertEqual(dead_letter_arguments(None), {})

    def test_quorum_work_queue(self) -> None:
        """A quorum work queue dead-letters at-least-once, rejects when full, caps deliveries."""
        args = work_queue_arguments("quorum", "q.dead")
        self.assertEqual(
            args,
            {
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "q.dead",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                "x-delivery-limit": DEFAULT_DELIVERY_LIMIT,
            },
        )
        Queue("q", arguments=args)  # a valid quorum declaration
        self.assertNotIn("x-delivery-limit", work_queue_arguments("quorum", "d", None))

    def test_quorum_dead_letter_queue(self) -> None:
        """The dead-letter queue is quorum and dead-letters nothing further."""
        self.assertEqual(dead_letter_arguments("quorum"), {"x-queue-type": "quorum"})

    def test_classic_named(self) -> None:
        """An explicit classic type is declared as such."""
        self.assertEqual(work_queue_arguments("classic", "d"), {"x-queue-type": "classic"})

    def test_bad_values(self) -> None:
        """Unknown types and a zero limit are refused."""
        self.assertRaises(ValueError, work_queue_arguments, "stream", "d")
        self.assertRaises(ValueError, work_queue_arguments, "quorum", "d", 0)
