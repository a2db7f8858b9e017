# -*- test-case-name: txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg workers}: list the running workers.

The registry in Redis says which workers exist; what each is doing (state,
running tasks, counters) comes from the worker itself, through the same
C{status} control command as C{txmsg control NAME status}, so both commands
show the same numbers.  A worker that does not answer in time is shown as
its last heartbeat left it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime

from txmsg._coerce import check_redis_url, redis_url_option, seconds, url_from_environment
from txmsg._options import GnuOptions
from txmsg.redis.connection import RedisConnection
from txmsg.redis.control import send_control
from txmsg.redis.pubsub import PubSub
from txmsg.redis.url import ENV_VAR as REDIS_ENV_VAR
from txmsg.worker._cli_common import say
from txmsg.worker.roster import list_workers

__all__ = ["Options", "format_workers", "live_statuses", "run"]


class Options(GnuOptions):
    """
    Options of C{txmsg workers}.
    """

    synopsis = "[--redis URL] [--json]"
    optParameters = [
        [
            "redis",
            None,
            None,
            "Redis URL (default: $TXMSG_REDIS_URL or redis://127.0.0.1:6379/0).",
            redis_url_option(),
        ],
        ["timeout", "t", 5.0, "Seconds to wait for Redis.", seconds("timeout", 0, above=True)],
    ]
    optFlags = [["json", "j", "Print the full status of each worker as JSON lines."]]

    def postOptions(self) -> None:
        """
        Take the URL from the environment when C{--redis} is not given.
        """
        self["redis"] = url_from_environment(self["redis"], REDIS_ENV_VAR, check_redis_url)


def format_workers(workers: list[dict[str, Any]], now: float) -> str:
    """
    A table of workers: name, state, queues, running tasks, counters, age of
    the last heartbeat.
    """
    if not workers:
        return "no workers registered (workers register when started with --redis)"
    rows = [("NAME", "STATE", "QUEUES", "RUNNING", "OK", "FAILED", "DEAD", "UPTIME", "SEEN")]
    for w in workers:
        counts = w.get("counts", {})
        rows.append(
            (
                str(w.get("name")),
                str(w.get("state")),
                ",".join(w.get("queues", [])),
                str(len(w.get("running", []))),
                str(counts.get("succeeded", 0)),
                str(counts.get("failed", 0)),
                str(counts.get("dead_lettered", 0)),
                "{:.0f}s".format(w.get("uptime", 0)),
                "{:.0f}s ago".format(max(0.0, now - w.get("time", now))),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


async def live_statuses(
    workers: list[dict[str, Any]], ask: Callable[[str], Deferred[Any]]
) -> list[dict[str, Any]]:
    """
    Replace each registry entry by its worker's own C{status} reply.

    @param workers: entries from the registry (each has a C{name}).
    @param ask: sends C{status} to the named worker; fires with the control
        reply (C{{"ok": True, "result": {...}}}) or fails (no answer in time).
    @return: the live status of each worker that answered, else its
        registry entry, in the same order.
    """
    replies = await DeferredList([ask(str(w.get("name"))) for w in workers], consumeErrors=True)
    live = []
    for entry, (ok, reply) in zip(workers, replies, strict=True):
        if (
            ok
            and isinstance(reply, dict)
            and reply.get("ok")
            and isinstance(reply.get("result"), dict)
        ):
            live.append(reply["result"])
        else:
            live.append(entry)
    return live


async def _main(reactor: IReactorTime, options: Options) -> int:
    url = options["redis"]
    timeout = options["timeout"]
    redis = RedisConnection(url, reactor=reactor, command_timeout=timeout)
    pubsub = PubSub(url, reactor=reactor)
    redis.startService()
    pubsub.startService()

    def ask(name: str) -> Deferred[Any]:
        return send_control(redis, pubsub, name, "status", timeout=min(timeout, 2.0), clock=reactor)

    try:
        await redis.when_connected(timeout)
        workers = await live_statuses(await list_workers(redis.handler), ask)
    except Exception as e:
        say("workers", "cannot read the worker registry: {}".format(e))
        return 1
    finally:
        await pubsub.stopService()
        await redis.stopService()
    if options["json"]:
        for w in workers:
            print(json.dumps(w))
    else:
        print(format_workers(workers, time.time()))
    return 0


def run(reactor: IReactorTime, options: Options) -> Deferred[int]:
    """
    Run C{txmsg workers}.
    """
    return Deferred.fromCoroutine(_main(reactor, options))
