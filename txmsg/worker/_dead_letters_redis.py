# -*- test-case-name: txmsg.test.test_worker_redis_streams -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg dead-letters QUEUE --broker redis://...}: the dead letters of a
work queue on Redis Streams (the stream C{txmsg:{QUEUE}:dead}).  Listing
only reads; C{--requeue} adds each back to its queue's stream (its
C{x-txmsg-*} headers dropped, so its attempts start again) and only then
deletes it; C{--purge} deletes them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from txmsg.redis import streams
from txmsg.redis.connection import RedisConnection
from txmsg.redis.streams import StreamKeys
from txmsg.worker._cli_common import CommandError

__all__ = ["dead_letters"]


async def dead_letters(
    reactor: IReactorTime,
    url: str,
    queue: str,
    *,
    limit: int,
    requeue: bool,
    purge: bool,
    timeout: float,
    show: Callable[[int, bytes, dict[str, Any]], None],
) -> None:
    """
    List (calling C{show(index, body, headers)}), requeue or purge the dead
    letters of C{queue}.
    """
    conn = RedisConnection(url, decode_responses=False, reactor=reactor)
    conn.startService()
    try:
        try:
            await conn.when_connected(timeout)
        except Exception as e:
            raise CommandError("cannot reach Redis: {}".format(e)) from None
        h = conn.handler
        dead = StreamKeys(queue).dead
        total = int(await h.execute_command("XLEN", dead))
        if purge:
            await h.execute_command("DEL", dead)
            print("purged {} dead letter(s) from {}.dead".format(total, queue))
            return
        print("{} dead letter(s) in {}.dead".format(total, queue))
        entries = await h.execute_command("XRANGE", dead, "-", "+", "COUNT", limit)
        requeued = 0
        for index, (entry_id, fields) in enumerate(entries or (), 1):
            entry = streams.decode_entry(entry_id, fields)
            headers = dict(entry.headers) if isinstance(entry.headers, dict) else {}
            show(index, entry.body, headers)
            if requeue:
                target = str(headers.get("x-txmsg-queue") or queue)
                clean = {k: v for k, v in headers.items() if not k.startswith("x-txmsg-")}
                again = streams.encode_entry(
                    entry.body,
                    clean,
                    content_type=entry.content_type,
                    message_id=entry.message_id,
                    correlation_id=entry.correlation_id,
                    reply_to=entry.reply_to,
                )
                await h.execute_command("XADD", StreamKeys(target).stream, "*", *again)
                await h.execute_command("XDEL", dead, entry.entry_id)
                requeued += 1
        if requeue:
            print("requeued {} dead letter(s) to their work queue".format(requeued))
    finally:
        await conn.stopService()
