# -*- test-case-name: txmsg.test.test_schedule_ticks -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tick arithmetic for periodic tasks: when an entry fires next, which ticks
are due after a pause, and the deterministic task id of each tick.

Times are POSIX timestamps (seconds, UTC).  Cron expressions (parsed by
C{croniter}) follow the wall clock of the entry's time zone, so that
C{30 2 * * *} in C{Europe/Berlin} means half past two in Berlin all year;
each wall-clock time fires at most once a day:

  - spring forward (the wall clock jumps from 02:00 to 03:00): a time in
    the skipped hour fires once, at the moment the clock jumps over it
    (02:30 fires at 03:30 summer time, the same instant as 01:30 UTC);
  - fall back (the wall clock repeats 02:00 to 03:00): a time in the
    repeated hour fires once, at its first occurrence.

Intervals (C{every=N} seconds) are plain UTC arithmetic anchored at the
epoch, so every scheduler computes the same ticks, whatever its start time.

Pure: no I/O, no clock; the caller passes "now".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from txmsg.schedule.entries import Entry

__all__ = ["due_ticks", "latest_tick", "next_tick", "tick_task_id", "validate_cron"]

#: The most ticks one call of L{due_ticks} returns for a C{catch_up} entry.
MAX_CATCH_UP = 1000


def validate_cron(expression: str) -> None:
    """
    @raise ValueError: naming the problem, when C{expression} is not a
        five-field cron expression croniter understands.
    """
    from croniter import croniter

    if len(expression.split()) != 5:
        raise ValueError(
            "cron expression {!r} must have 5 fields (minute hour day month weekday)".format(
                expression
            )
        )
    if not croniter.is_valid(expression):
        raise ValueError("invalid cron expression {!r}".format(expression))


def _wall_clock(zone: ZoneInfo, when: float) -> datetime:
    """The naive local wall-clock time of instant C{when} in C{zone}."""
    return datetime.fromtimestamp(when, zone).replace(tzinfo=None)


def _instant(zone: ZoneInfo, wall: datetime) -> float:
    """
    The instant of naive wall-clock time C{wall} in C{zone}: its first
    occurrence when the clock repeats it, and the instant the clock jumps
    over it when it is skipped (C{fold=0} does both).
    """
    return wall.replace(tzinfo=zone, fold=0).timestamp()


#: How far before C{after} the wall-clock search starts: a time skipped by a
#: clock change fires at an instant up to the size of the jump after its
#: wall time, so a search that started at C{after}'s own wall time would miss
#: it when C{after} falls between the jump and that instant.
_LOOKBACK = 3 * 3600.0


def _cron_ticks(expression: str, zone: ZoneInfo, after: float) -> Iterator[float]:
    """Cron ticks strictly after C{after}, increasing, forever."""
    from croniter import croniter

    walls = croniter(expression, _wall_clock(zone, after - _LOOKBACK), ret_type=datetime)
    previous = after
    while True:
        when = _instant(zone, walls.get_next(datetime))
        if when > previous:
            previous = when
            yield when


def next_tick(entry: Entry, after: float) -> float:
    """
    The first tick of C{entry} strictly after instant C{after}.
    """
    if entry.every is not None:
        return (after // entry.every + 1) * entry.every
    assert entry.cron is not None
    return next(_cron_ticks(entry.cron, ZoneInfo(entry.timezone), after))


def latest_tick(entry: Entry, now: float) -> float:
    """
    The newest tick of C{entry} at or before instant C{now}.
    """
    if entry.every is not None:
        return now // entry.every * entry.every
    from croniter import croniter

    assert entry.cron is not None
    zone = ZoneInfo(entry.timezone)
    # Start just after now so that a tick at exactly now counts.
    walls = croniter(entry.cron, _wall_clock(zone, now + 1), ret_type=datetime)
    while True:
        when = _instant(zone, walls.get_prev(datetime))
        if when <= now:
            return when


def due_ticks(entry: Entry, covered: float, now: float) -> list[float]:
    """
    The ticks to fire now: those strictly after C{covered} (the instant up to
    which the entry's ticks were already handled) and at or before C{now}.

    @return: every due tick, oldest first, when C{entry.catch_up} (at most
        L{MAX_CATCH_UP}, the newest ones); otherwise only the newest due
        tick (one firing for all the ticks missed during a pause).
    """
    if now < covered:
        return []
    newest = latest_tick(entry, now)
    if newest <= covered:
        return []
    if not entry.catch_up:
        return [newest]
    due = [newest]
    while len(due) < MAX_CATCH_UP:
        earlier = latest_tick(entry, due[-1] - 1e-3)
        if earlier <= covered:
            break
        due.append(earlier)
    due.reverse()
    return due


def tick_task_id(entry_name: str, tick: float) -> str:
    """
    The task id of C{entry_name}'s tick at C{tick}: C{<entry>:<UTC time>},
    the same in every scheduler, so that the worker's idempotency check
    runs each tick once even if two schedulers sent it.
    """
    stamp = datetime.fromtimestamp(tick, timezone.utc)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if stamp.microsecond:
        text += ".{:06d}".format(stamp.microsecond).rstrip("0")
    return "{}:{}Z".format(entry_name, text)
