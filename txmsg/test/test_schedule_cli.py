# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.schedule.schedule_cli}: options and the table.
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txmsg.cli import Options as TopOptions
from txmsg.schedule import load_schedule
from txmsg.schedule.schedule_cli import format_entries


class ScheduleCommandTests(SynchronousTestCase):
    """
    C{txmsg schedule list|run}.
    """

    def test_table(self) -> None:
        schedule = load_schedule("txmsg.test._schedule_sample")
        now = datetime(2026, 5, 1, 12, 0, 0, 500000, tzinfo=timezone.utc).timestamp()
        text = format_entries(schedule, {"fast": now - 0.5}, now)
        lines = text.splitlines()
        self.assertEqual(lines[0].split(), ["ENTRY", "WHEN", "TASK", "LAST", "FIRED", "NEXT"])
        self.assertIn("fast", lines[1])
        self.assertIn("every 1s catch-up", lines[1])
        self.assertIn("2026-05-01 12:00:00 UTC", lines[1])
        self.assertIn("2026-05-01 12:00:01 UTC", lines[1])
        self.assertIn("nightly", lines[2])
        self.assertIn("cron 30 2 * * * Europe/Berlin", lines[2])
        self.assertIn("2026-05-02 00:30:00 UTC", lines[2])  # 02:30 in Berlin, summer time
        self.assertIn("(no Redis)", format_entries(schedule, None, now))

    def test_run_needs_a_known_entry(self) -> None:
        options = TopOptions()
        with self.assertRaises(usage.UsageError) as e:
            options.parseOptions(
                ["schedule", "run", "nope", "--schedule", "txmsg.test._schedule_sample"]
            )
        self.assertIn("no entry 'nope'", str(e.exception))
        self.assertIn("entries: fast, nightly", str(e.exception))

    def test_needs_a_subcommand(self) -> None:
        with self.assertRaises(usage.UsageError):
            TopOptions().parseOptions(["schedule"])
