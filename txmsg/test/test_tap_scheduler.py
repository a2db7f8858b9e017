# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.tap.scheduler}: options and the service tree.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txmsg.tap.scheduler import Options, makeService


class OptionsTests(SynchronousTestCase):
    """
    Bad options give one line naming the problem.
    """

    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_errors(self) -> None:
        for args, reason in [
            ((), "--schedule MODULE is required"),
            (("--schedule", "no.such"), "cannot import schedule module 'no.such'"),
            (("--schedule", "txmsg.test._schedule_sample", "--lease", "0.5"), "lease"),
            (("--schedule", "txmsg.test._schedule_sample", "--owner", "a|b"), "'|'"),
            (("--schedule", "txmsg.test._schedule_sample", "--amqp", "http://x"), "amqp"),
        ]:
            with self.assertRaises(usage.UsageError) as e:
                self.parse(*args)
            self.assertIn(reason, str(e.exception))

    def test_service_tree(self) -> None:
        options = self.parse(
            "--schedule",
            "txmsg.test._schedule_sample",
            "--redis",
            "redis://127.0.0.1:1/0",
            "--amqp",
            "amqp://guest:guest@127.0.0.1:1/%2F",
            "--name",
            "n1",
            "--owner",
            "me",
        )
        top = makeService(options, reactor=Clock())
        scheduler = top.getServiceNamed("scheduler")
        self.assertEqual((scheduler.schedule_name, scheduler.owner), ("n1", "me"))
        self.assertEqual(len(scheduler.schedule), 2)
        self.assertEqual(top.stop_order()[0], [scheduler])
