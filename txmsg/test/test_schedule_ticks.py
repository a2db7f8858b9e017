# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.schedule.ticks}: cron and interval arithmetic, DST, missed
ticks, task ids.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from twisted.trial.unittest import SynchronousTestCase

from txmsg.schedule.entries import Entry
from txmsg.schedule.ticks import (
    MAX_CATCH_UP,
    due_ticks,
    latest_tick,
    next_tick,
    tick_task_id,
)
from txmsg.test._optional import fuzz

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(zone: ZoneInfo, *fields: int, fold: int = 0) -> float:
    """The instant of a wall-clock time in C{zone}."""
    return datetime(*fields).replace(tzinfo=zone, fold=fold).timestamp()  # type: ignore[arg-type]


def utc(*fields: int) -> float:
    """The instant of a UTC time."""
    return datetime(*fields).replace(tzinfo=timezone.utc).timestamp()  # type: ignore[arg-type]


def fired_between(entry: Entry, start: float, end: float) -> list[float]:
    """Every tick of C{entry} in (start, end], by repeated L{next_tick}."""
    ticks = []
    when = next_tick(entry, start)
    while when <= end:
        ticks.append(when)
        when = next_tick(entry, when)
    return ticks


class IntervalTests(SynchronousTestCase):
    """
    Interval entries tick at multiples of C{every} since the epoch.
    """

    def test_next_tick(self) -> None:
        entry = Entry("e", "t", every=10)
        self.assertEqual(next_tick(entry, 1000.0), 1010.0)
        self.assertEqual(next_tick(entry, 1003.5), 1010.0)
        self.assertEqual(latest_tick(entry, 1003.5), 1000.0)
        self.assertEqual(latest_tick(entry, 1010.0), 1010.0)

    def test_same_ticks_whatever_the_start(self) -> None:
        """
        Two schedulers started at different times compute the same ticks
        (and so the same task ids).
        """
        entry = Entry("e", "t", every=2.5)
        self.assertEqual(fired_between(entry, 100.3, 110), [102.5, 105.0, 107.5, 110.0])
        self.assertEqual(fired_between(entry, 101.9, 110), [102.5, 105.0, 107.5, 110.0])

    def test_missed_ticks_fire_once(self) -> None:
        entry = Entry("e", "t", every=1)
        self.assertEqual(due_ticks(entry, 100.0, 100.5), [])
        self.assertEqual(due_ticks(entry, 100.0, 101.0), [101.0])
        self.assertEqual(due_ticks(entry, 100.0, 160.2), [160.0])

    def test_catch_up_fires_each(self) -> None:
        entry = Entry("e", "t", every=1, catch_up=True)
        self.assertEqual(due_ticks(entry, 100.0, 104.9), [101.0, 102.0, 103.0, 104.0])

    def test_catch_up_is_bounded(self) -> None:
        entry = Entry("e", "t", every=1, catch_up=True)
        due = due_ticks(entry, 0.0, 10_000.0)
        self.assertEqual(len(due), MAX_CATCH_UP)
        self.assertEqual(due[-1], 10_000.0)
        self.assertEqual(due, sorted(due))

    def test_clock_going_back(self) -> None:
        """A clock set back before what was covered fires nothing."""
        self.assertEqual(due_ticks(Entry("e", "t", every=1), 100.0, 50.0), [])


class CronTests(SynchronousTestCase):
    """
    Cron entries follow the wall clock of their time zone.
    """

    def test_daily_in_zone(self) -> None:
        entry = Entry("e", "t", cron="30 2 * * *", timezone="Europe/Berlin")
        start = at(BERLIN, 2026, 1, 10, 12, 0)
        self.assertEqual(next_tick(entry, start), at(BERLIN, 2026, 1, 11, 2, 30))

    def test_spring_forward_fires_once(self) -> None:
        """
        On the day the clock jumps from 02:00 to 03:00, a 02:30 entry fires
        once, when the clock jumps over it.
        """
        entry = Entry("e", "t", cron="30 2 * * *", timezone="Europe/Berlin")
        ticks = fired_between(entry, at(BERLIN, 2026, 3, 28, 12, 0), at(BERLIN, 2026, 3, 30, 12, 0))
        # 01:30 UTC is 03:30 summer time: the moment 02:30 was jumped over.
        self.assertEqual(ticks, [utc(2026, 3, 29, 1, 30), at(BERLIN, 2026, 3, 30, 2, 30)])

    def test_fall_back_fires_once(self) -> None:
        """
        On the day the clock repeats 02:00 to 03:00, a 02:30 entry fires
        once, at the first 02:30.
        """
        entry = Entry("e", "t", cron="30 2 * * *", timezone="Europe/Berlin")
        ticks = fired_between(
            entry, at(BERLIN, 2026, 10, 24, 12, 0), at(BERLIN, 2026, 10, 26, 12, 0)
        )
        self.assertEqual(
            ticks, [at(BERLIN, 2026, 10, 25, 2, 30, fold=0), at(BERLIN, 2026, 10, 26, 2, 30)]
        )
        self.assertEqual(ticks[0], utc(2026, 10, 25, 0, 30))

    def test_next_tick_inside_the_jump(self) -> None:
        """
        Asked between the jump and the instant a skipped time fires at, the
        next tick is still that day's: Lord Howe Island moves its clock from
        02:00 to 02:30, so 02:01 fires at 02:31 summer time; at 02:30:59 the
        next tick is 30 seconds away, not a day.
        """
        zone = ZoneInfo("Australia/Lord_Howe")
        entry = Entry("e", "t", cron="1 2 * * *", timezone="Australia/Lord_Howe")
        fires = utc(2028, 9, 30, 15, 31)
        self.assertEqual(datetime.fromtimestamp(fires, zone).strftime("%H:%M"), "02:31")
        self.assertEqual(next_tick(entry, fires - 1), fires)
        berlin = Entry("e", "t", cron="30 2 * * *", timezone="Europe/Berlin")
        self.assertEqual(next_tick(berlin, utc(2026, 3, 29, 1, 10)), utc(2026, 3, 29, 1, 30))

    def test_new_york_fall_back(self) -> None:
        """In New York the repeated hour is 01:00-02:00: 01:30 fires once."""
        entry = Entry("e", "t", cron="30 1 * * *", timezone="America/New_York")
        ticks = fired_between(entry, at(NEW_YORK, 2026, 10, 31, 12), at(NEW_YORK, 2026, 11, 2, 12))
        self.assertEqual(len(ticks), 2)
        self.assertEqual(ticks[0], utc(2026, 11, 1, 5, 30))

    def test_frequent_entry_across_spring_forward(self) -> None:
        """
        A quarter-hourly entry fires at every real quarter hour across the
        jump, each instant once, increasing.
        """
        entry = Entry("e", "t", cron="*/15 * * * *", timezone="Europe/Berlin")
        ticks = fired_between(entry, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0))
        self.assertEqual(ticks, [utc(2026, 3, 29, 0, 0) + 900 * i for i in range(1, 9)])

    def test_missed_cron_ticks(self) -> None:
        entry = Entry("e", "t", cron="0 * * * *")
        self.assertEqual(
            due_ticks(entry, utc(2026, 5, 1, 0, 0), utc(2026, 5, 1, 5, 10)), [utc(2026, 5, 1, 5)]
        )
        caught = Entry("e", "t", cron="0 * * * *", catch_up=True)
        self.assertEqual(
            due_ticks(caught, utc(2026, 5, 1, 0, 0), utc(2026, 5, 1, 5, 10)),
            [utc(2026, 5, 1, h) for h in range(1, 6)],
        )

    def test_tick_at_exactly_now_is_due(self) -> None:
        entry = Entry("e", "t", cron="0 * * * *")
        self.assertEqual(
            due_ticks(entry, utc(2026, 5, 1, 0, 30), utc(2026, 5, 1, 1)), [utc(2026, 5, 1, 1)]
        )


class TaskIdTests(SynchronousTestCase):
    """
    Each tick has one task id, the same in every scheduler.
    """

    def test_format(self) -> None:
        self.assertEqual(
            tick_task_id("report", utc(2026, 5, 1, 2, 30)), "report:2026-05-01T02:30:00Z"
        )
        self.assertEqual(
            tick_task_id("fast", utc(2026, 5, 1) + 0.25), "fast:2026-05-01T00:00:00.25Z"
        )


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


class PropertyTests(SynchronousTestCase):
    """
    Invariants over random daily entries, zones and start times.
    """

    @fuzz(
        lambda st: st.sampled_from(ZONES),
        lambda st: st.integers(0, 59),
        lambda st: st.integers(0, 23),
        lambda st: st.integers(int(utc(2020, 1, 1)), int(utc(2035, 1, 1))),
        examples=200,
    )
    def test_daily_entry_fires_once_a_day(
        self, zone: str, minute: int, hour: int, start: int
    ) -> None:
        """
        A daily entry's ticks strictly increase, fire on consecutive local
        days, at the wall time when it exists, and agree with L{latest_tick}
        and L{due_ticks}.
        """
        entry = Entry("e", "t", cron="{} {} * * *".format(minute, hour), timezone=zone)
        caught = Entry("e", "t", cron=entry.cron, timezone=zone, catch_up=True)
        ticks = fired_between(entry, float(start), start + 4 * 86400.0)
        self.assertIn(len(ticks), (3, 4, 5))
        self.assertEqual(ticks, sorted(set(ticks)))
        days = [datetime.fromtimestamp(t, ZoneInfo(zone)).date() for t in ticks]
        for earlier, later in zip(days, days[1:], strict=False):
            self.assertEqual((later - earlier).days, 1)
        for t in ticks:
            self.assertEqual(latest_tick(entry, t), t)
            self.assertEqual(next_tick(entry, t - 0.5), t)
            local = datetime.fromtimestamp(t, ZoneInfo(zone))
            if (local.hour, local.minute) != (hour, minute):
                # Only when that wall time did not exist that day.
                wall = datetime(local.year, local.month, local.day, hour, minute)
                self.assertNotEqual(
                    datetime.fromtimestamp(
                        wall.replace(tzinfo=ZoneInfo(zone)).timestamp(), ZoneInfo(zone)
                    ).replace(tzinfo=None),
                    wall,
                )
        self.assertEqual(due_ticks(caught, float(start), ticks[-1]), ticks)
        self.assertEqual(due_ticks(entry, float(start), ticks[-1]), ticks[-1:])
