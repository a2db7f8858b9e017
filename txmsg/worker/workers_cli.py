# -*- test-case-name: txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg workers}: list the running workers from the registry in Redis.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.internet.defer import Deferred

from txmsg._coerce import check_redis_url, redis_url_option, seconds, url_from_environment
from txmsg._options import GnuOptions
from txmsg.redis.url import ENV_VAR as REDIS_ENV_VAR
from txmsg.worker._cli_common import say

__all__ = ["Options", "format_workers", "run"]


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


async def _main(reactor: Any, options: Options) -> int:
    from txmsg.redis import RedisConnection
    from txmsg.worker.roster import list_workers

    redis = RedisConnection(options["redis"], reactor=reactor, command_timeout=options["timeout"])
    redis.startService()
    try:
        await redis.when_connected(options["timeout"])
        workers = await list_workers(redis.handler)
    except Exception as e:
        say("workers", "cannot read the worker registry: {}".format(e))
        return 1
    finally:
        await redis.stopService()
    if options["json"]:
        for w in workers:
            print(json.dumps(w))
    else:
        print(format_workers(workers, time.time()))
    return 0


def run(reactor: Any, options: Options) -> Deferred[int]:
    """
    Run C{txmsg workers}.
    """
    return Deferred.fromCoroutine(_main(reactor, options))
