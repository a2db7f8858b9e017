# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Redis Streams side of the worker integration tests: a redis-py peer
with the interface of C{tests._worker_support.Client} (submit, collect
replies, count and read queues), and L{RedisBroker}, a mixin that runs a
worker test case against C{--broker redis://...} instead of RabbitMQ.

Queue names map to the broker's keys (C{docs/redis_worker.md}): C{Q} is the
stream C{txmsg:{Q}:stream}, C{Q.dead} the stream C{txmsg:{Q}:dead}.
"""

from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

from tests._redis_support import SHARED_URL as REDIS_URL
from tests._redis_support import redis_py
from tests._worker_support import Submitter

__all__ = ["REDIS_URL", "RedisBroker", "RedisClient", "delete_stream_queues", "stream_key"]

GROUP = "txmsg"


def stream_key(queue: str) -> str:
    """
    The stream of C{queue} (C{Q.dead}: the dead-letter stream of C{Q}).
    """
    if queue.endswith(".dead"):
        return "txmsg:{" + queue[: -len(".dead")] + "}:dead"
    return "txmsg:{" + queue + "}:stream"


def delete_stream_queues(queues: Any, url: str = REDIS_URL) -> None:
    """
    Delete every key of these work queues.
    """
    r = redis_py(url)
    try:
        for queue in queues:
            tag = "{" + queue + "}:"
            names = ["txmsg:" + tag + n for n in ("stream", "dead", "max-priority")]
            names += ["txmsg:" + tag + "stream:p{}".format(k) for k in range(1, 11)]
            names += ["txmsg:delay:" + tag + n for n in ("due", "items", "attempts")]
            r.delete(*names)
    finally:
        r.close()


class RedisClient(Submitter):
    """
    A redis-py peer: submits tasks with C{XADD}, reads replies from its own
    reply stream, counts and reads queues.
    """

    def __init__(self, url: str = REDIS_URL) -> None:
        self.redis = redis_py(url)
        self.reply_queue = "txmsg:{replies-" + uuid.uuid4().hex + "}"
        #: (correlation_id, decoded body, arrival time), in arrival order.
        self.replies: list[tuple[str, Any, float]] = []
        self._last = "0-0"

    def declare(self, queue: str) -> None:
        """
        Create the stream and group as the worker does (entries added before
        a worker starts are read by it).
        """
        try:
            self.redis.xgroup_create(stream_key(queue), GROUP, "0", mkstream=True)
        except Exception as e:
            if "BUSYGROUP" not in str(e):
                raise

    def publish_raw(
        self,
        queue: str,
        body: bytes,
        *,
        content_type: str | None = None,
        message_id: str | None = None,
        correlation_id: str | None = None,
        reply: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """
        Add any body with these properties.
        """
        fields: dict[str, Any] = {"body": body}
        for name, value in (
            ("content_type", content_type),
            ("message_id", message_id),
            ("correlation_id", correlation_id),
            ("reply_to", self.reply_queue if reply else None),
        ):
            if value is not None:
                fields[name] = value
        if headers:
            fields["headers"] = json.dumps(headers)
        self.redis.xadd(stream_key(queue), fields)

    def _read(self, block_ms: int) -> None:
        got = self.redis.xread({self.reply_queue: self._last}, block=block_ms)
        for _stream, entries in got or ():
            for entry_id, fields in entries:
                self._last = entry_id
                body = fields.get(b"body", b"")
                try:
                    data = json.loads(body)
                except ValueError:
                    data = body
                cid = fields.get(b"correlation_id", b"").decode()
                self.replies.append((cid, data, time.monotonic()))

    def collect(self, n: int, timeout: float) -> list[tuple[str, Any, float]]:
        """
        Wait until at least C{n} replies arrived in all; return them all.
        """
        deadline = time.monotonic() + timeout
        while len(self.replies) < n:
            if time.monotonic() > deadline:
                raise AssertionError(
                    "{} of {} replies after {}s".format(len(self.replies), n, timeout)
                )
            self._read(100)
        return self.replies

    def linger(self, seconds: float) -> None:
        """
        Keep receiving replies for C{seconds} (to catch duplicates).
        """
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(100)

    def count(self, queue: str) -> int:
        """
        Entries of C{queue} not delivered yet (dead letters: all of them).
        """
        key = stream_key(queue)
        length = int(self.redis.xlen(key))
        if queue.endswith(".dead"):
            return length
        try:
            pending = int(self.redis.xpending(key, GROUP)["pending"])
        except Exception:
            pending = 0
        return length - pending

    def consumers(self, queue: str) -> int:
        """
        Consumers of C{queue}'s group.
        """
        try:
            return len(self.redis.xinfo_consumers(stream_key(queue), GROUP))
        except Exception:
            return 0

    def get_all(self, queue: str) -> list[tuple[Any, bytes]]:
        """
        Take every entry of C{queue} (a dead-letter stream): (properties,
        body) pairs, the properties with C{headers} decoded.
        """
        key = stream_key(queue)
        out = []
        for entry_id, fields in self.redis.xrange(key):
            text = {k.decode(): v for k, v in fields.items()}
            headers = json.loads(text.pop("headers", b"{}"))
            body = text.pop("body", b"")
            props = SimpleNamespace(headers=headers, **{k: v.decode() for k, v in text.items()})
            out.append((props, body))
            self.redis.xdel(key, entry_id)
        return out

    def close(self) -> None:
        """
        Delete the reply stream and close.
        """
        self.redis.delete(self.reply_queue)
        self.redis.close()


class RedisBroker:
    """
    Mixin (first base) running a worker test case on Redis Streams: its
    clients are L{RedisClient}s and its workers take C{--broker redis://}
    (with a 3-second visibility timeout, so claims happen within a test).
    """

    broker = "redis"

    def make_client(self) -> RedisClient:
        """A redis-py peer."""
        return RedisClient()

    def broker_args(self) -> list[str]:
        """The worker's broker options."""
        return ["--broker", REDIS_URL, "--visibility-timeout", "3"]

    def delete_queues(self, queues: Any, retry: Any = None) -> None:
        """Delete the queues' keys."""
        delete_stream_queues(queues)

    def require(self) -> None:
        """Fail clearly when Redis is not there."""
        redis_py().close()
