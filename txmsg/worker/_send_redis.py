# -*- test-case-name: txmsg.test.test_worker_redis_streams -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg send --broker redis://...}: tasks submitted to a worker on Redis
Streams (one C{XADD} each, or an entry of the delay set with C{--countdown}
or C{--eta}; see C{docs/redis_worker.md}); with C{--wait}
the results are read from a reply stream of this command's own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from txmsg.redis import streams
from txmsg.redis._common import as_bytes
from txmsg.redis.connection import RedisConnection
from txmsg.worker._cli_common import CommandError
from txmsg.worker._client_redis import add_task
from txmsg.worker.envelope import Task

__all__ = ["submit_all"]


async def submit_all(
    reactor: IReactorTime,
    url: str,
    queue: str,
    task: Task,
    count: int,
    wait: bool,
    timeout: float,
    done: Callable[[Any, str | None], None],
    priority: int | None = None,
) -> None:
    """
    Submit C{count} copies of C{task} (fresh ids; its C{eta} and
    C{expires} kept); call C{done(value, error)} for each: the id once
    added, or with C{wait} its result (or the error text).
    """
    commands = RedisConnection(url, decode_responses=False, reactor=reactor)
    reader = RedisConnection(url, decode_responses=False, reactor=reactor)
    commands.startService()
    reader.startService()
    replies = "txmsg:{replies-" + uuid.uuid4().hex + "}"
    try:
        try:
            await commands.when_connected(timeout)
        except Exception as e:  # RedisCommandTimeout naming the cause, or a refusal
            raise CommandError("cannot reach Redis: {}".format(e)) from None
        ids = set()
        for _ in range(count):
            one = replace(task, id=uuid.uuid4().hex)
            await add_task(
                commands.handler,
                queue,
                one,
                reactor.seconds(),
                priority,
                reply_to=replies if wait else None,
            )
            if wait:
                ids.add(one.id)
            else:
                done(one.id, None)
        if wait:
            await reader.when_connected(timeout)
            await _collect(reactor, reader, replies, ids, timeout, done)
    finally:
        if wait:
            try:
                await commands.handler.execute_command("DEL", replies)
            except Exception:
                pass
        await reader.stopService()
        await commands.stopService()


async def _collect(
    reactor: IReactorTime,
    reader: RedisConnection,
    key: str,
    ids: set[str],
    timeout: float,
    done: Callable[[Any, str | None], None],
) -> None:
    last = "0-0"
    deadline = reactor.seconds() + timeout
    while ids:
        left = deadline - reactor.seconds()
        if left <= 0:
            for _ in list(ids):
                done(None, "no result within {:g} s".format(timeout))
            return
        d: Deferred[Any] = reader.raw_handler.execute_command(
            "XREAD", "BLOCK", max(1, int(min(left, 1.0) * 1000)), "STREAMS", key, last
        )
        reply = await d
        for entry in streams.parse_entries(reply):
            last = entry.entry_id
            if entry.correlation_id not in ids:
                continue
            ids.discard(entry.correlation_id)
            try:
                result = json.loads(as_bytes(entry.body))
            except ValueError:
                done(None, "undecodable reply")
                continue
            if result.get("status") == "ok":
                done(result.get("result"), None)
            else:
                error = result.get("error") or {}
                done(None, "{}: {}".format(error.get("type"), error.get("message")))
