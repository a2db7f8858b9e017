# -*- test-case-name: txmsg.test.test_tap_worker -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.tap.worker}.
"""

from __future__ import annotations

import gc
import os

from twisted.application.service import IServiceMaker
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txmsg.tap.worker import Options, makeService

SAMPLE = "txmsg.test._worker_tasks_sample"


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


class OptionsTests(SynchronousTestCase):
    """
    Tests for the worker's L{Options}.
    """

    def setUp(self) -> None:
        self.saved = {k: os.environ.pop(k, None) for k in ("TXMSG_AMQP_URL", "TXMSG_REDIS_URL")}
        self.addCleanup(self.restore)

    def restore(self) -> None:
        for key, value in self.saved.items():
            if value is not None:
                os.environ[key] = value

    def test_defaults(self) -> None:
        """
        With only C{--tasks}: queue C{tasks}, prefetch 1, 4 threads, 30 s
        grace, 3 retries, no Redis, the default broker.
        """
        options = parse("--tasks", SAMPLE)
        self.assertEqual(options["queues"], ["tasks"])
        self.assertEqual(
            (options["prefetch"], options["concurrency"], options["grace"], options["max-retries"]),
            (1, 4, 30.0, 3),
        )
        self.assertIsNone(options["redis"])
        self.assertIsNone(options["amqp"])
        self.assertEqual(options["task-registry"].names(), ["add"])
        self.assertEqual(options["retry"].initial_delay, 1.0)

    def test_environment(self) -> None:
        """
        The broker and Redis URLs come from the environment when not given.
        """
        os.environ["TXMSG_AMQP_URL"] = "amqp://u:p@h/"
        os.environ["TXMSG_REDIS_URL"] = "redis://h:1/0"
        self.addCleanup(os.environ.pop, "TXMSG_AMQP_URL")
        self.addCleanup(os.environ.pop, "TXMSG_REDIS_URL")
        options = parse("--tasks", SAMPLE)
        self.assertEqual((options["amqp"], options["redis"]), ("amqp://u:p@h/", "redis://h:1/0"))

    def test_several_queues(self) -> None:
        """
        C{--queue} may be repeated.
        """
        self.assertEqual(parse("-t", SAMPLE, "-q", "a", "-q", "b")["queues"], ["a", "b"])

    def test_bad_task_module(self) -> None:
        """
        A task module that cannot be loaded is a one-line usage error naming
        it and the exception.
        """
        e = self.assertRaises(UsageError, parse, "--tasks", "no.such.module")
        self.assertIn("cannot import task module 'no.such.module': ModuleNotFoundError", str(e))

    def test_tasks_required(self) -> None:
        """
        Without C{--tasks} or C{--raw-handler} there is nothing to run.
        """
        self.assertRaises(UsageError, parse)

    def test_bad_numbers(self) -> None:
        """
        Invalid numbers are usage errors.
        """
        for args in [
            ("--prefetch", "0"),
            ("--concurrency", "x"),
            ("--grace", "-1"),
            ("--max-retries", "-2"),
        ]:
            self.assertRaises(UsageError, parse, "--tasks", SAMPLE, *args)

    def test_queue_type(self) -> None:
        """
        C{--queue-type} takes quorum or classic.
        """
        self.assertEqual(parse("-t", SAMPLE, "--queue-type", "quorum")["queue-type"], "quorum")
        self.assertRaises(UsageError, parse, "-t", SAMPLE, "--queue-type", "stream")

    def test_raw_handler(self) -> None:
        """
        C{--raw-handler QUEUE=module:function} binds that queue; without
        C{QUEUE=} it binds the C{--queue} queues.
        """
        options = parse("--raw-handler", "plain=txmsg.test._worker_tasks_sample:add")
        self.assertEqual(list(options["raw"]), ["plain"])
        options = parse("-q", "task_queue", "--raw-handler", "txmsg.test._worker_tasks_sample:add")
        self.assertEqual(list(options["raw"]), ["task_queue"])
        self.assertRaises(UsageError, parse, "--raw-handler", "nocolon")
        self.assertRaises(
            UsageError, parse, "--raw-handler", "txmsg.test._worker_tasks_sample:nope"
        )


class MakeServiceTests(SynchronousTestCase):
    """
    Tests for the worker's L{makeService}.
    """

    def test_builds_worker(self) -> None:
        """
        makeService builds a worker with the options' settings, handling
        signals and stopping the reactor on C{shutdown}.
        """
        options = parse("--tasks", SAMPLE, "--name", "w9", "--prefetch", "10", "-q", "jobs")
        worker = makeService(options, reactor=Clock())
        self.assertEqual((worker.name, worker.prefetch, worker.queues), ("w9", 10, ["jobs"]))
        self.assertTrue(worker._handle_signals)
        self.assertIsNone(worker.redis)
        self.assertIsNotNone(worker.getServiceNamed("amqp"))
        self.assertIsNone(worker.broker.transactions)  # chosen by the worker

    def test_no_transactions(self) -> None:
        """
        C{--no-transactions} keeps the consumer plain; with
        C{--transactions} too, it is a usage error.
        """
        options = parse("--tasks", SAMPLE, "--no-transactions")
        self.assertIs(makeService(options, reactor=Clock()).broker.transactions, False)
        self.assertRaises(
            UsageError, parse, "--tasks", SAMPLE, "--transactions", "--no-transactions"
        )

    def test_transactions(self) -> None:
        """
        C{--transactions} gives the RabbitMQ broker a transactional consumer
        channel (replies in the ack's transaction).
        """
        options = parse("--tasks", SAMPLE, "--transactions")
        worker = makeService(options, reactor=Clock())
        self.assertTrue(worker.broker.transactions)

    def test_freezes_startup_objects(self) -> None:
        """
        Once the reactor runs, the objects alive then are frozen out of the
        garbage collector's sight; a clock that is no reactor gets nothing
        to run.
        """
        frozen: list[bool] = []
        self.patch(gc, "freeze", lambda: frozen.append(True))
        options = parse("--tasks", SAMPLE, "-q", "jobs")
        reactor = MemoryReactorClock()
        makeService(options, reactor=reactor)
        self.assertEqual(frozen, [])
        reactor.run()
        self.assertEqual(frozen, [True])
        makeService(options, reactor=Clock())
        self.assertEqual(frozen, [True])

    def test_plugin_declared(self) -> None:
        """
        The twistd plugin C{txmsg-worker} names this module.
        """
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertEqual(makers["txmsg-worker"].module, "txmsg.tap.worker")  # type: ignore[attr-defined]
