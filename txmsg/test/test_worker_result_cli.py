# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for C{txmsg result} and C{txmsg revoke}: parsing and formatting (the
commands themselves run against Redis in C{tests/test_worker_results.py}).
"""

from __future__ import annotations

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txmsg.cli import SUBCOMMANDS
from txmsg.worker import result_cli, revoke_cli
from txmsg.worker.states import FAILED, STARTED, SUCCEEDED, TaskState


class ResultOptionsTests(SynchronousTestCase):
    """C{txmsg result}'s options."""

    def parse(self, *args: str) -> result_cli.Options:
        options = result_cli.Options()
        options.parseOptions(list(args))
        return options

    def test_id_and_flags(self) -> None:
        """The id, C{--wait}, C{--timeout} and C{--json}, in any order."""
        options = self.parse("abc", "--wait", "-t", "2.5", "--json")
        self.assertEqual(
            (options["id"], options["wait"], options["timeout"], options["json"]),
            ("abc", 1, 2.5, 1),
        )

    def test_redis_url(self) -> None:
        """C{--redis} is checked; a bad scheme is a usage error."""
        self.assertEqual(self.parse("a", "--redis", "redis://h:1/0")["redis"], "redis://h:1/0")
        self.assertRaises(UsageError, self.parse, "a", "--redis", "http://h")

    def test_needs_one_id(self) -> None:
        """No id, or two, is a usage error."""
        self.assertRaises(UsageError, self.parse)
        self.assertRaises(UsageError, self.parse, "a", "b")

    def test_registered(self) -> None:
        """Both commands are C{txmsg} subcommands."""
        names = {name: module for name, module, _ in SUBCOMMANDS}
        self.assertEqual(names["result"], "txmsg.worker.result_cli")
        self.assertEqual(names["revoke"], "txmsg.worker.revoke_cli")


class FormatTests(SynchronousTestCase):
    """L{result_cli.format_state}."""

    def test_succeeded(self) -> None:
        """A success shows its result as JSON."""
        state = TaskState("t", SUCCEEDED, result={"a": [1]})
        self.assertEqual(result_cli.format_state(state), 't succeeded: {"a": [1]}')

    def test_failed(self) -> None:
        """A failure shows its error."""
        state = TaskState("t", FAILED, error_type="ValueError", error_message="bad")
        self.assertEqual(result_cli.format_state(state), "t failed: ValueError: bad")

    def test_running(self) -> None:
        """A task on its way shows its status only."""
        self.assertEqual(result_cli.format_state(TaskState("t", STARTED)), "t started")


class RevokeOptionsTests(SynchronousTestCase):
    """C{txmsg revoke}'s options."""

    def test_ids(self) -> None:
        """Several ids may be named; none is a usage error."""
        options = revoke_cli.Options()
        options.parseOptions(["a", "b"])
        self.assertEqual(options["ids"], ["a", "b"])
        self.assertRaises(UsageError, revoke_cli.Options().parseOptions, [])
