# -*- test-case-name: txmsg.test.test_worker_redis_priority -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
What a L{txmsg.worker.TaskClient} made with a C{redis://} URL sends with:
L{RedisTaskSender}, one C{streams.add} script per task (see
C{docs/redis_worker.md}).

A task is added to its queue's stream (the level stream of its
C{priority} when the workers read priorities), or, when its ETA is still
ahead, to the queue's delay set, which the workers' poller moves into
the stream when due: the same keys and fields as the Redis Streams
broker's own retries.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred

from txmsg.redis import streams
from txmsg.redis.connection import RedisConnection
from txmsg.redis.streams import StreamKeys
from txmsg.worker.envelope import CONTENT_TYPE, Task, encode_task

__all__ = ["REDIS_SCHEMES", "RedisTaskSender", "is_redis_url"]

#: The URL schemes of a Redis broker (the others are AMQP's).
REDIS_SCHEMES = ("redis", "rediss", "unix")


def is_redis_url(url: str | None) -> bool:
    """
    C{url} names a Redis server (C{redis://}, C{rediss://}, C{unix://}).
    """
    return url is not None and url.split(":", 1)[0].lower() in REDIS_SCHEMES


def task_fields(
    message: Task,
    priority: int | None = None,
    headers: Mapping[str, Any] | None = None,
    reply_to: str | None = None,
) -> list[bytes]:
    """
    The stream entry's fields of C{message}: its envelope and properties.
    """
    return streams.encode_entry(
        encode_task(message),
        headers,
        content_type=CONTENT_TYPE,
        message_id=message.id,
        correlation_id=message.id if reply_to else None,
        reply_to=reply_to,
        priority=None if priority is None else str(priority),
    )


def add_task(
    handler: Any,
    queue: str,
    message: Task,
    now: float,
    priority: int | None = None,
    headers: Mapping[str, Any] | None = None,
    reply_to: str | None = None,
) -> Deferred[Any]:
    """
    Add C{message} to C{queue}: to its stream now, or to its delay set
    when its ETA is after C{now}.
    """
    fields = task_fields(message, priority, headers, reply_to)
    keys = StreamKeys(queue)
    if message.eta is not None and message.eta > now:
        return streams.add(handler, keys, fields, message.eta, uuid.uuid4().hex)
    return streams.add(handler, keys, fields)


class RedisTaskSender(RedisConnection):
    """
    The Redis connection of a client sending to workers on Redis Streams.
    """

    def __init__(self, url: str, reactor: Any = None) -> None:
        super().__init__(url, decode_responses=False, reactor=reactor)

    def when_ready(self, timeout: float | None = None) -> Deferred[None]:
        """
        Fire once connected (as L{txmsg.amqp.AMQPConnection.when_ready}).
        """
        return self.when_connected(timeout)
