# -*- test-case-name: txmsg.test.test_info_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for C{txmsg info} (L{txmsg.ops.info_cli}).
"""

from __future__ import annotations

import io
import json
import os

from rich.console import Console
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txmsg.ops import info_cli
from txmsg.ops.dashboard import QueueSampler
from txmsg.ops.dashboard._stats import QueueStats


def text(overview: dict, now: float = 100.0) -> str:
    out = io.StringIO()
    Console(file=out, width=120).print(info_cli.render(overview, now))
    return out.getvalue()


class InfoTests(SynchronousTestCase):
    """
    The tables and the options.
    """

    def test_tables(self) -> None:
        """
        Queues with their figures (missing ones marked), workers with
        their state and last heartbeat, and any sampling problem.
        """
        overview = {
            "queues": [
                {
                    "queue": "jobs",
                    "time": 1.0,
                    "ready": 4,
                    "unacked": None,
                    "consumers": 2,
                    "net_rate": -1.5,
                    "dead": 3,
                },
                {"queue": "gone", "time": 1.0, "ready": None},
            ],
            "workers": [
                {
                    "name": "w1",
                    "state": "running",
                    "queues": ["jobs"],
                    "running": [{}],
                    "counts": {"succeeded": 9, "failed": 1, "dead_lettered": 3},
                    "time": 90.0,
                }
            ],
            "error": "worker roster: down",
        }
        lines = [" ".join(line.replace("│", " ").split()) for line in text(overview).splitlines()]
        self.assertIn("jobs 4 - 2 -1.5 3", lines)
        self.assertIn("gone (missing) - - - - -", lines)
        self.assertIn("w1 running jobs 1 9 1 3 10s ago", lines)
        self.assertIn("incomplete: worker roster: down", lines)

    def test_empty(self) -> None:
        """
        Nothing known yet is said in words.
        """
        out = text({"queues": [], "workers": [], "error": None})
        self.assertIn("no queues known yet", out)
        self.assertIn("no workers registered", out)

    def test_options(self) -> None:
        """
        Print once by default; C{--interval} must be positive; Redis
        defaults to the local server.
        """
        saved = os.environ.pop("TXMSG_REDIS_URL", None)
        self.addCleanup(lambda: saved is None or os.environ.__setitem__("TXMSG_REDIS_URL", saved))
        options = info_cli.Options()
        options.parseOptions(["-q", "a", "--queue", "b"])
        self.assertEqual(
            (options["interval"], options["queues"], options["redis"]),
            (None, ["a", "b"], "redis://127.0.0.1:6379/0"),
        )
        self.assertRaises(UsageError, info_cli.Options().parseOptions, ["--interval", "0"])


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Depth:
    """
    Queue C{jobs} with one more ready message at each sample.
    """

    lists_queues = False

    def __init__(self) -> None:
        self.n = 0

    def sample(self, queues: object) -> Deferred[dict[str, QueueStats]]:
        self.n += 1
        return succeed({"jobs": QueueStats(self.n, 1)})


class LoopTests(SynchronousTestCase):
    """
    Printing once, periodically, or refreshing in place.
    """

    def run_loop(self, out: io.StringIO, *args: str) -> tuple[Clock, Deferred[int]]:
        clock = Clock()
        options = info_cli.Options()
        options.parseOptions(["--redis", "redis://127.0.0.1:1/0", *args])
        sampler = QueueSampler(Depth(), queues=["jobs"], clock=clock)
        return clock, Deferred.fromCoroutine(info_cli._loop(clock, sampler, options, out))

    def test_once(self) -> None:
        """
        Without C{--interval}: the tables once, then exit 0.
        """
        out = io.StringIO()
        _, d = self.run_loop(out)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(out.getvalue().count("QUEUE"), 1)

    def test_periodic_json(self) -> None:
        """
        With C{--interval} and C{--json}: one fresh JSON object per interval.
        """
        out = io.StringIO()
        clock, d = self.run_loop(out, "--interval", "2", "--json")
        clock.advance(2)
        clock.advance(2)
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual([o["queues"][0]["ready"] for o in lines], [1, 2, 3])
        d.cancel()
        self.failureResultOf(d, CancelledError)

    def test_refresh_in_place(self) -> None:
        """
        On a terminal the tables are redrawn in place, with new figures.
        """
        out = FakeTerminal()
        clock, d = self.run_loop(out, "--interval", "1")
        clock.advance(1)
        text = out.getvalue()
        self.assertIn("\x1b[", text)  # cursor movement: redrawn, not appended
        self.assertRegex(text, r"jobs +│ +2 ")
        d.cancel()
        self.failureResultOf(d, CancelledError)
