# -*- test-case-name: txmsg.test.test_info_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg info [--interval S]}: queues and workers in two tables, like
C{rq info}.  With C{--interval}, the tables are refreshed in place on a
terminal (C{watch}-style, drawn by C{rich}) and printed again every
interval otherwise; Ctrl-C ends it.

The figures come from the same sampler as the dashboard: passive declares
(or the management API with C{--management}) for the queues, the worker
roster in Redis for the workers.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.internet.task import deferLater

from txmsg._coerce import (
    amqp_url_option,
    check_amqp_url,
    check_redis_url,
    redis_url_option,
    seconds,
    url_from_environment,
)
from txmsg._options import GnuOptions
from txmsg.amqp.url import ENV_VAR as AMQP_ENV_VAR
from txmsg.ops.dashboard._sampler import QueueSampler
from txmsg.ops.dashboard._stats import ManagementStats, PassiveDeclareStats
from txmsg.redis._common import handler_of
from txmsg.redis.connection import RedisConnection
from txmsg.redis.url import ENV_VAR as REDIS_ENV_VAR
from txmsg.worker._cli_common import CommandError, amqp_connection, run_command
from txmsg.worker.roster import list_workers

__all__ = ["Options", "render", "run"]


class Options(GnuOptions):
    """
    Options of C{txmsg info}.
    """

    synopsis = "[--interval S] [--queue Q]... [--amqp URL] [--redis URL] [--json]"
    optParameters = [
        [
            "interval",
            "i",
            None,
            "Refresh every S seconds until Ctrl-C (default: print once).",
            seconds("interval", 0.1),
        ],
        ["amqp", None, None, "RabbitMQ URL (default: $TXMSG_AMQP_URL).", amqp_url_option()],
        [
            "redis",
            None,
            None,
            "Redis URL of the worker roster (default: $TXMSG_REDIS_URL or "
            "redis://127.0.0.1:6379/0).",
            redis_url_option(),
        ],
        [
            "management",
            None,
            None,
            "RabbitMQ management API URL (adds unacked counts and rates).",
        ],
        [
            "timeout",
            "t",
            5.0,
            "Seconds to wait for the servers.",
            seconds("timeout", 0, above=True),
        ],
    ]
    optFlags = [["json", "j", "Print the figures as one JSON object per refresh."]]

    def __init__(self) -> None:
        super().__init__()
        self["queues"] = []

    def opt_queue(self, name: str) -> None:
        """
        Show this queue too (repeat for several; the workers' queues are
        always shown).
        """
        self["queues"].append(name)

    opt_q = opt_queue

    def postOptions(self) -> None:
        """
        Take URLs from the environment when not given.
        """
        self["amqp"] = url_from_environment(self["amqp"], AMQP_ENV_VAR, check_amqp_url)
        self["redis"] = (
            url_from_environment(self["redis"], REDIS_ENV_VAR, check_redis_url)
            or "redis://127.0.0.1:6379/0"
        )


def _num(value: Any, rate: bool = False) -> str:
    if value is None:
        return "-"
    return "{:+.1f}".format(value) if rate else str(value)


def render(overview: dict[str, Any], now: float) -> Any:
    """
    The two tables (a C{rich} renderable) for an overview from
    L{QueueSampler.overview}.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    queues = Table(title="Queues", title_justify="left", expand=False)
    for column in ("QUEUE", "READY", "UNACKED", "CONSUMERS", "NET/S", "DEAD"):
        queues.add_column(column, justify="left" if column == "QUEUE" else "right")
    for q in overview["queues"]:
        missing = q.get("time") is not None and q.get("ready") is None
        queues.add_row(
            q["queue"] + (" (missing)" if missing else ""),
            _num(q.get("ready")),
            _num(q.get("unacked")),
            _num(q.get("consumers")),
            _num(q.get("net_rate"), rate=True),
            _num(q.get("dead")),
        )
    workers = Table(title="Workers", title_justify="left")
    for column in ("NAME", "STATE", "QUEUES", "RUNNING", "OK", "FAILED", "DEAD", "SEEN"):
        workers.add_column(column)
    for w in overview["workers"]:
        counts = w.get("counts") or {}
        seen = w.get("time")
        workers.add_row(
            str(w.get("name")),
            str(w.get("state")),
            ",".join(str(q) for q in w.get("queues") or []),
            str(len(w.get("running") or [])),
            str(counts.get("succeeded", 0)),
            str(counts.get("failed", 0)),
            str(counts.get("dead_lettered", 0)),
            "{:.0f}s ago".format(max(0.0, now - seen)) if isinstance(seen, (int, float)) else "-",
        )
    parts: list[Any] = [queues if overview["queues"] else Text("no queues known yet")]
    parts.append(workers if overview["workers"] else Text("no workers registered"))
    if overview.get("error"):
        parts.append(Text("incomplete: " + str(overview["error"]), style="red"))
    parts.append(Text(time.strftime("%H:%M:%S", time.localtime(now)), style="dim"))
    return Group(*parts)


async def _loop(
    reactor: IReactorTime, sampler: QueueSampler, options: Options, out: IO[str]
) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out)
    interval = options["interval"]

    def show() -> None:
        overview = sampler.overview()
        if options["json"]:
            print(json.dumps(overview, sort_keys=True, default=str), file=out, flush=True)
        else:
            console.print(render(overview, time.time()))

    await sampler.sample_now()
    if sampler.sampled_at is None:
        raise CommandError(str(sampler.error))
    if interval is None or options["json"] or not console.is_terminal:
        while True:
            show()
            if interval is None:
                return 0
            await deferLater(reactor, interval, lambda: None)
            await sampler.sample_now()
    live = Live(
        render(sampler.overview(), time.time()),
        console=console,
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    live.start(refresh=True)
    # Ctrl-C stops the reactor: give the terminal its cursor back.
    if IReactorCore.providedBy(reactor):
        cast(IReactorCore, reactor).addSystemEventTrigger("before", "shutdown", live.stop)
    try:
        while True:
            await deferLater(reactor, interval, lambda: None)
            await sampler.sample_now()
            live.update(render(sampler.overview(), time.time()), refresh=True)
    finally:
        live.stop()


async def _main(reactor: IReactorTime, options: Options) -> int:
    async with amqp_connection(reactor, options["amqp"], options["timeout"]) as conn:
        redis = RedisConnection(
            options["redis"], reactor=reactor, command_timeout=options["timeout"]
        )
        redis.startService()
        try:
            try:
                await redis.when_connected(options["timeout"])
            except Exception as e:
                raise CommandError("cannot read the worker roster: {}".format(e)) from None
            stats: Any
            if options["management"]:
                try:
                    stats = ManagementStats(options["management"], reactor=reactor)
                except ValueError as e:
                    raise CommandError(str(e)) from None
            else:
                stats = PassiveDeclareStats(conn)
            sampler = QueueSampler(
                stats,
                queues=options["queues"],
                workers=lambda: list_workers(handler_of(redis)),
                interval=options["interval"] or 5.0,
                clock=reactor,
            )
            return await _loop(reactor, sampler, options, sys.stdout)
        finally:
            await redis.stopService()


def run(reactor: IReactorTime, options: Options) -> Deferred[int]:
    """
    Run C{txmsg info}.
    """
    return run_command("info", _main(reactor, options))
