# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.schedule.entries}: declaring and loading schedules.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txmsg.schedule import Entry, Schedule, load_schedule


class EntryTests(SynchronousTestCase):
    """
    Entries refuse what cannot be scheduled, with a one-line reason.
    """

    def test_refused(self) -> None:
        cases = [
            (dict(name="a b", task="t", every=1), "entry name"),
            (dict(name="a", task="", every=1), "needs a task"),
            (dict(name="a", task="t"), "exactly one of"),
            (dict(name="a", task="t", every=1, cron="* * * * *"), "exactly one of"),
            (dict(name="a", task="t", every=0.01), "at least 0.1"),
            (dict(name="a", task="t", cron="* * *"), "5 fields"),
            (dict(name="a", task="t", cron="61 * * * *"), "invalid cron"),
            (dict(name="a", task="t", every=1, timezone="Mars/Olympus"), "unknown time zone"),
            (dict(name="a", task="t", every=1, args=(object(),)), "not JSON"),
        ]
        for kwargs, reason in cases:
            with self.assertRaises(ValueError) as e:
                Entry(**kwargs)  # type: ignore[arg-type]
            self.assertIn(reason, str(e.exception))

    def test_when(self) -> None:
        self.assertEqual(Entry("a", "t", every=2.5).when, "every 2.5s")
        self.assertEqual(
            Entry("a", "t", cron="0 * * * *", timezone="Asia/Kolkata").when,
            "cron 0 * * * * Asia/Kolkata",
        )


class ScheduleTests(SynchronousTestCase):
    """
    A L{Schedule} collects entries with its defaults.
    """

    def test_defaults_and_order(self) -> None:
        schedule = Schedule(timezone="Europe/Berlin", queue="q")
        schedule.every("z", 5, task="t")
        schedule.cron("a", "0 3 * * *", task="t", kwargs={"x": 1})
        self.assertEqual([e.name for e in schedule], ["a", "z"])
        entry = schedule.get("a")
        assert entry is not None
        self.assertEqual(
            (entry.timezone, entry.queue, dict(entry.kwargs)), ("Europe/Berlin", "q", {"x": 1})
        )
        self.assertEqual(len(schedule), 2)
        self.assertIsNone(schedule.get("nope"))

    def test_duplicate_name(self) -> None:
        schedule = Schedule()
        schedule.every("a", 5, task="t")
        self.assertRaises(ValueError, schedule.every, "a", 6, task="t")

    def test_load(self) -> None:
        schedule = load_schedule("txmsg.test._schedule_sample")
        self.assertEqual([e.name for e in schedule], ["fast", "nightly"])
        self.assertIs(load_schedule("txmsg.test._schedule_sample:schedule"), schedule)

    def test_load_errors(self) -> None:
        for spec, reason in [
            ("txmsg.test.no_such_module", "cannot import schedule module"),
            ("txmsg.test._schedule_sample:nope", "'nope' is not a Schedule"),
            ("txmsg.schedule.ticks", "defines no Schedule"),
        ]:
            with self.assertRaises(ValueError) as e:
                load_schedule(spec)
            self.assertIn(reason, str(e.exception))
