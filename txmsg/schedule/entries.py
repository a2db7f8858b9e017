# -*- test-case-name: txmsg.test.test_schedule_entries -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
What a schedule module declares: L{Entry} values collected in a
L{Schedule}.

    from txmsg.schedule import Schedule

    schedule = Schedule(timezone="Europe/Berlin")
    schedule.cron("nightly-report", "30 2 * * *", task="reports.nightly")
    schedule.every("heartbeat", 10, task="ops.ping", args=("scheduler",))

C{twistd -n txmsg-scheduler --schedule mypkg.schedule} loads it
(L{load_schedule}).  Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from txmsg._loading import load_named
from txmsg.schedule.ticks import validate_cron

__all__ = ["Entry", "Schedule", "load_schedule"]

#: Entry names: they become part of task ids and Redis hash fields.
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


@dataclass(frozen=True)
class Entry:
    """
    One periodic task.

    @ivar name: unique in its schedule; part of each tick's task id.
    @ivar task: the task name to send.
    @ivar cron: a five-field cron expression (wall clock of C{timezone}), or
        L{None} for an interval entry.
    @ivar every: seconds between ticks (interval entries), or L{None}.
    @ivar args: positional arguments of the task (JSON values).
    @ivar kwargs: keyword arguments of the task (JSON values).
    @ivar timezone: an IANA time zone name for C{cron}.
    @ivar catch_up: after downtime, fire every missed tick (oldest first)
        instead of one firing for all of them.
    @ivar queue: the work queue (default: the scheduler's).
    """

    name: str
    task: str
    cron: str | None = None
    every: float | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    catch_up: bool = False
    queue: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                "entry name {!r} must be 1-100 letters, digits, '.', '_' or '-'".format(self.name)
            )
        if not self.task:
            raise ValueError("entry {!r} needs a task name".format(self.name))
        if (self.cron is None) == (self.every is None):
            raise ValueError("entry {!r} needs exactly one of cron= or every=".format(self.name))
        if self.every is not None and not self.every >= 0.1:
            raise ValueError("entry {!r}: every= must be at least 0.1 s".format(self.name))
        if self.cron is not None:
            validate_cron(self.cron)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("entry {!r}: unknown time zone {!r}".format(self.name, self.timezone))
        try:
            json.dumps([self.args, dict(self.kwargs)])
        except (TypeError, ValueError) as e:
            raise ValueError("entry {!r}: arguments are not JSON: {}".format(self.name, e))

    @property
    def when(self) -> str:
        """A short human description: C{cron 30 2 * * * Europe/Berlin} or C{every 10s}."""
        if self.every is not None:
            return "every {:g}s".format(self.every)
        return "cron {} {}".format(self.cron, self.timezone)


class Schedule:
    """
    The entries of one schedule module, by name.
    """

    def __init__(self, timezone: str = "UTC", queue: str | None = None) -> None:
        """
        @param timezone: the default time zone of cron entries.
        @param queue: the default work queue of the entries.
        """
        self.timezone = timezone
        self.queue = queue
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> Entry:
        """
        Add C{entry}.

        @raise ValueError: when an entry of that name exists.
        """
        if entry.name in self._entries:
            raise ValueError("schedule already has an entry named {!r}".format(entry.name))
        self._entries[entry.name] = entry
        return entry

    def cron(
        self,
        name: str,
        expression: str,
        *,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timezone: str | None = None,
        catch_up: bool = False,
        queue: str | None = None,
    ) -> Entry:
        """Add a cron entry (see L{Entry})."""
        return self.add(
            Entry(
                name,
                task,
                cron=expression,
                args=tuple(args),
                kwargs=dict(kwargs or {}),
                timezone=timezone or self.timezone,
                catch_up=catch_up,
                queue=queue or self.queue,
            )
        )

    def every(
        self,
        name: str,
        seconds: float,
        *,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        catch_up: bool = False,
        queue: str | None = None,
    ) -> Entry:
        """Add an interval entry (see L{Entry})."""
        return self.add(
            Entry(
                name,
                task,
                every=float(seconds),
                args=tuple(args),
                kwargs=dict(kwargs or {}),
                catch_up=catch_up,
                queue=queue or self.queue,
            )
        )

    def get(self, name: str) -> Entry | None:
        """The entry called C{name}, or L{None}."""
        return self._entries.get(name)

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)


def load_schedule(spec: str) -> Schedule:
    """
    Load the L{Schedule} named by C{spec}: C{"package.module"} (its
    attribute C{schedule}, or its only L{Schedule}) or
    C{"package.module:attribute"}.

    @raise ValueError: with a one-line reason when it cannot be loaded.
    """
    return load_named(spec, Schedule, "schedule", "schedule module")
