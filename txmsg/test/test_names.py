# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the old names kept importable for one release after a rename.
"""

from twisted.trial.unittest import SynchronousTestCase

from txmsg import amqp, events, worker
from txmsg._endpoints import loopback_by_default
from txmsg.amqp import consumer, delivery
from txmsg.tap import echo as tap_echo
from txmsg.worker import registry, roster, tasks


class RenamedNamesTests(SynchronousTestCase):
    """
    Each old name is the very object of its new name.
    """

    def test_handler_outcome(self) -> None:
        """
        C{txmsg.events.Outcome} is L{txmsg.events.HandlerOutcome}.
        """
        self.assertIs(events.Outcome, events.HandlerOutcome)

    def test_disposition(self) -> None:
        """
        C{txmsg.amqp.Outcome} (and its homes in C{consumer} and C{delivery})
        is L{txmsg.amqp.Disposition}.
        """
        for module in (amqp, consumer, delivery):
            self.assertIs(module.Outcome, amqp.Disposition)

    def test_task_catalog(self) -> None:
        """
        C{TaskRegistry} is L{txmsg.worker.TaskCatalog}.
        """
        self.assertIs(worker.TaskRegistry, worker.TaskCatalog)
        self.assertIs(tasks.TaskRegistry, tasks.TaskCatalog)

    def test_worker_roster(self) -> None:
        """
        C{txmsg.worker.registry} re-exports L{txmsg.worker.roster}.
        """
        for name in roster.__all__:
            self.assertIs(getattr(registry, name), getattr(roster, name))

    def test_loopback_by_default(self) -> None:
        """
        C{txmsg.tap.echo.loopback_by_default} is still importable from there.
        """
        self.assertIs(tap_echo.loopback_by_default, loopback_by_default)
