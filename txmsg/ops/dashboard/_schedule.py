# -*- test-case-name: txmsg.test.test_dashboard_schedule -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The schedule page's data: each entry of a L{txmsg.schedule.Schedule} with
its last firing (the schedulers' record in Redis, as C{txmsg schedule list}
reads it), its next one, and which scheduler holds the lease now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from txmsg.redis._common import handler_of
from txmsg.schedule.entries import Schedule
from txmsg.schedule.leader import LeaderLease, schedule_keys
from txmsg.schedule.ticks import next_tick

__all__ = ["schedule_view"]


def schedule_view(
    schedule: Schedule,
    redis: Any = None,
    name: str = "default",
    now: Callable[[], float] = time.time,
) -> Callable[[], Deferred[dict[str, Any]]]:
    """
    A function returning (a Deferred of) the schedule as a JSON-able dict.

    @param schedule: the entries.
    @param redis: the schedulers' Redis (a service, connection or handler);
        without it last firings and the leader are unknown.
    @param name: the schedule's name (as given to C{txmsg-scheduler}).
    """

    async def view() -> dict[str, Any]:
        covered: dict[str, float] | None = None
        leader = error = None
        if redis is not None:
            try:
                covered = await LeaderLease(redis, name, "txmsg-dashboard").read_covered()
                raw = await handler_of(redis).get(schedule_keys(name)[0])
                if raw:
                    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                    leader = text.rsplit("|", 1)[0]
            except Exception as e:
                error = "cannot read the schedule's record in Redis: {}".format(e)
        instant = now()
        return {
            "name": name,
            "leader": leader,
            "error": error,
            "entries": [
                {
                    "name": entry.name,
                    "when": entry.when,
                    "task": entry.task,
                    "queue": entry.queue,
                    "catch_up": entry.catch_up,
                    "last": None if covered is None else covered.get(entry.name),
                    "next": next_tick(entry, instant),
                }
                for entry in schedule
            ],
        }

    return lambda: Deferred.fromCoroutine(view())
