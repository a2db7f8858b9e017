# -*- test-case-name: txmsg.test.test_schedule_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg schedule list|run}: look at a schedule and fire one entry by hand.

  - C{txmsg schedule list --schedule MOD}: each entry, when it fires, its
    last firing (from the schedulers' record in Redis) and its next one.
  - C{txmsg schedule run ENTRY --schedule MOD}: send that entry's task now
    (task id C{<entry>:run:<random>}), outside the schedule: the next tick
    still fires.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python import usage

from txmsg._coerce import (
    amqp_url_option,
    check_amqp_url,
    check_redis_url,
    redis_url_option,
    seconds,
    url_from_environment,
)
from txmsg._options import GnuOptions, load_user_object
from txmsg.amqp.url import ENV_VAR as AMQP_ENV_VAR
from txmsg.redis.connection import RedisConnection
from txmsg.redis.url import ENV_VAR as REDIS_ENV_VAR
from txmsg.schedule.entries import Schedule, load_schedule
from txmsg.schedule.leader import LeaderLease
from txmsg.schedule.ticks import next_tick
from txmsg.worker._cli_common import CommandError, amqp_connection, run_command
from txmsg.worker.client import TaskClient

__all__ = ["Options", "format_entries", "run"]


class _Common(GnuOptions):
    optParameters = [
        ["schedule", "s", None, "Module (or module:attribute) defining a Schedule."],
        ["name", "n", "default", "The schedule's name (as given to txmsg-scheduler)."],
        [
            "timeout",
            "t",
            10.0,
            "Seconds to wait for the servers.",
            seconds("timeout", 0, above=True),
        ],
    ]

    def postOptions(self) -> None:
        self["loaded"] = load_user_object(load_schedule, self["schedule"], "--schedule")


class ListOptions(_Common):
    """Options of C{txmsg schedule list}."""

    synopsis = "--schedule MODULE [--redis URL]"
    optParameters = [
        [
            "redis",
            None,
            None,
            "Redis URL of the schedulers (default: $TXMSG_REDIS_URL); "
            "without it, last firings are not shown.",
            redis_url_option(),
        ],
    ]

    def postOptions(self) -> None:
        """Load the schedule; the URL from the environment."""
        super().postOptions()
        self["redis"] = url_from_environment(self["redis"], REDIS_ENV_VAR, check_redis_url)


class RunOptions(_Common):
    """Options of C{txmsg schedule run}."""

    synopsis = "ENTRY --schedule MODULE [--amqp URL] [--queue Q]"
    optParameters = [
        ["amqp", None, None, "RabbitMQ URL (default: $TXMSG_AMQP_URL).", amqp_url_option()],
        ["queue", "q", "tasks", "Work queue of entries that name none."],
    ]

    def parseArgs(self, entry: str) -> None:  # type: ignore[override]
        """The entry to fire."""
        self["entry"] = entry

    def postOptions(self) -> None:
        """Load the schedule, find the entry; the URL from the environment."""
        super().postOptions()
        if self["loaded"].get(self["entry"]) is None:
            names = ", ".join(e.name for e in self["loaded"]) or "none"
            raise usage.UsageError(
                "no entry {!r} in {} (entries: {})".format(self["entry"], self["schedule"], names)
            )
        self["amqp"] = url_from_environment(self["amqp"], AMQP_ENV_VAR, check_amqp_url)


class Options(usage.Options):
    """
    Options of C{txmsg schedule} (plain options: what follows C{list} or
    C{run} belongs to that subcommand).
    """

    synopsis = "list|run [options]"
    subCommands = [
        ["list", None, ListOptions, "Show each entry with its last and next firing."],
        ["run", None, RunOptions, "Send one entry's task now."],
    ]

    def postOptions(self) -> None:
        """Insist on a subcommand."""
        if self.subCommand is None:
            raise usage.UsageError("say list or run")


def _stamp(when: float | None) -> str:
    if when is None:
        return "-"
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_entries(schedule: Schedule, covered: dict[str, float] | None, now: float) -> str:
    """
    The table of C{txmsg schedule list}.

    @param covered: the record of fired ticks, or L{None} when unknown.
    """
    rows = [("ENTRY", "WHEN", "TASK", "LAST FIRED", "NEXT")]
    for entry in schedule:
        last = None if covered is None else covered.get(entry.name)
        rows.append(
            (
                entry.name,
                entry.when + (" catch-up" if entry.catch_up else ""),
                entry.task,
                _stamp(last) if covered is not None else "(no Redis)",
                _stamp(next_tick(entry, now)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def _list(reactor: IReactorTime, options: ListOptions) -> int:
    covered = None
    if options["redis"] is not None:
        redis = RedisConnection(
            options["redis"], reactor=reactor, command_timeout=options["timeout"]
        )
        redis.startService()
        try:
            await redis.when_connected(options["timeout"])
            lease = LeaderLease(redis, options["name"], "txmsg-cli")
            covered = await lease.read_covered()
        except Exception as e:
            raise CommandError("cannot read the schedule's record in Redis: {}".format(e))
        finally:
            await redis.stopService()
    print(format_entries(options["loaded"], covered, time.time()))
    return 0


async def _run(reactor: IReactorTime, options: RunOptions) -> int:
    entry = options["loaded"].get(options["entry"])
    task_id = "{}:run:{}".format(entry.name, uuid.uuid4().hex[:12])
    async with amqp_connection(reactor, options["amqp"], options["timeout"]) as conn:
        client = TaskClient(conn, queue=options["queue"], timeout=options["timeout"])
        await client.submit(
            entry.task, entry.args, entry.kwargs, queue=entry.queue, task_id=task_id
        )
    print(task_id)
    return 0


def run(reactor: IReactorTime, options: Options) -> Deferred[int]:
    """Run C{txmsg schedule list} or C{txmsg schedule run}."""
    sub: Any = options.subOptions
    if options.subCommand == "list":
        return run_command("schedule list", _list(reactor, sub))
    return run_command("schedule run", _run(reactor, sub))
