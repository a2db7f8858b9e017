# -*- test-case-name: txmsg.test.test_worker_dead_letters -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.dead_letters} on the in-memory broker.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from txmsg.test._dashboard_support import Broker
from txmsg.worker import dead_letters


class DeadLetterOperationsTests(SynchronousTestCase):
    """
    Count, peek, requeue, delete and purge dead letters.
    """

    def setUp(self) -> None:
        self.b = Broker()
        self.addCleanup(self.b.stop)
        for task_id in ("t1", "t2", "t3"):
            self.b.dead_letter(task_id)

    def run_(self, coroutine: Any) -> Any:
        d = Deferred.fromCoroutine(coroutine)
        self.b.settle()
        return self.successResultOf(d)

    def test_peek_leaves_them(self) -> None:
        """
        Looking returns the count and the letters (keyed by message id) and
        removes nothing.
        """
        seen: list[str] = []
        total, letters = self.run_(
            dead_letters.peek(self.b.amqp, "jobs", 2, each=lambda d: seen.append(d.key))
        )
        self.assertEqual((total, [d.key for d in letters], seen), (3, ["t1", "t2"], ["t1", "t2"]))
        first = letters[0].as_json()
        self.assertEqual(
            (first["reason"], first["error"], first["target"], first["headers"]["other"]),
            ("failed", "ValueError: boom <b>", "jobs", "kept"),
        )
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 3)
        self.assertEqual(self.run_(dead_letters.count(self.b.amqp, "jobs")), 3)

    def test_requeue_by_key(self) -> None:
        """
        A named dead letter goes back to its queue without txmsg's headers;
        the others stay.
        """
        done = self.run_(dead_letters.requeue(self.b.amqp, "jobs", keys=["t2"]))
        self.assertEqual([d.key for d in done], ["t2"])
        [message] = self.b.broker.messages("jobs")
        self.assertEqual(json.loads(message.body)["id"], "t2")
        self.assertEqual(message.properties.headers, {"other": "kept"})
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 2)

    def test_requeue_all_with_progress(self) -> None:
        """
        Without keys, up to C{limit} are requeued, each reported.
        """
        seen: list[str] = []
        done = self.run_(
            dead_letters.requeue(self.b.amqp, "jobs", 10, each=lambda d: seen.append(d.key))
        )
        self.assertEqual((len(done), seen), (3, ["t1", "t2", "t3"]))
        self.assertEqual(
            (self.b.broker.message_count("jobs"), self.b.broker.message_count("jobs.dead")), (3, 0)
        )

    def test_delete_and_purge(self) -> None:
        """
        Deleting removes the named ones; purging the rest.
        """
        self.assertEqual(
            self.run_(dead_letters.delete(self.b.amqp, "jobs", ["t3", "nope"])), ["t3"]
        )
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 2)
        self.assertEqual(self.run_(dead_letters.purge(self.b.amqp, "jobs")), 2)
        self.assertEqual(self.b.broker.message_count("jobs.dead"), 0)
        self.assertEqual(self.b.broker.message_count("jobs"), 0)

    def test_missing_queue(self) -> None:
        """
        A queue without a dead-letter queue is L{NoSuchQueue}.
        """
        d = Deferred.fromCoroutine(dead_letters.peek(self.b.amqp, "other"))
        self.b.settle()
        self.failureResultOf(d, dead_letters.NoSuchQueue)

    def test_key_without_message_id(self) -> None:
        """
        A dead letter without a message id is keyed by a digest of its body.
        """
        key = dead_letters.message_key(None, b"junk")
        self.assertTrue(key.startswith("sha256:"))
        self.assertEqual(key, dead_letters.message_key("", b"junk"))
        self.assertNotEqual(key, dead_letters.message_key(None, b"junk2"))
