# -*- test-case-name: txmsg.test.test_worker_redis_streams -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker on Redis alone: L{RedisStreamsBroker}, an L{IWorkerBroker} on
Redis Streams (key layout and scripts: L{txmsg.redis.streams}).

Each work queue is a stream read by the consumer group C{txmsg}; each
worker is a consumer of it (its worker name).  A consumer reads with
C{XREADGROUP ... BLOCK} on a connection of its own, so the blocking read
never delays the worker's other commands, and holds at most C{prefetch}
entries unsettled.  Every decision is one Lua script that writes what the
decision needs (the retry, the dead letter) and acks (C{XACK}, C{XDEL}) in
one round trip; a reply is sent on the same connection just before it.

A worker that dies leaves its entries pending: after C{visibility_timeout}
seconds without news any other worker claims them (C{XAUTOCLAIM}) with the
group's delivery count, which the worker's delivery cap reads as
C{x-delivery-count}.  A live worker keeps its running entries fresh
(C{XCLAIM ... JUSTID}, which does not count a delivery), so a task running
longer than the timeout is not claimed by others.  Retries wait in a
L{txmsg.redis.DelayQueue} per queue, moved back into the stream by its
L{txmsg.redis.DelayPoller}.

With C{max_priority} N, the queue has one stream per priority level 0 to N
(L{StreamKeys.levels}); the consumer reads them in strict priority order
(a lower level only when every higher one is empty), claims on each, and
keeps an entry on its level when retrying it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from txmsg.events import IEventSink
from txmsg.ordered import stop_in_order
from txmsg.redis import streams
from txmsg.redis.connection import RedisConnection
from txmsg.redis.delay_queue import DelayPoller, DelayQueue
from txmsg.redis.streams import StreamKeys
from txmsg.worker.brokers.interfaces import IncomingMessage, IWorkerBroker
from txmsg.worker.decisions import Ack, DeadLetter, Decision, Delay, Reply, Requeue, Retry
from txmsg.worker.envelope import CONTENT_TYPE
from txmsg.worker.headers import (
    ATTEMPT_HEADER,
    DELIVERY_COUNT_HEADER,
    REDELIVERED_HEADER,
    BadHeaders,
    dead_letter_headers,
    read_headers,
    uncounted_headers,
)

__all__ = ["ACKED", "LEFT", "RedisStreamsBroker", "StreamConsumer"]

from txmsg.worker.brokers._stream_consumer import ACKED, LEFT, StreamConsumer


class _StreamTarget:
    """What a L{DelayPoller} moves due retries into: a stream."""

    kind = "stream"

    def __init__(self, key: str, levels: str | None = None) -> None:
        self.key = key
        self.levels = levels


@implementer(IWorkerBroker)
class RedisStreamsBroker(MultiService):
    """
    Consume and settle tasks on Redis Streams.

    @ivar commands: the command connection (a child service).
    @ivar visibility_timeout: seconds after which another worker may claim
        an entry this worker neither settled nor kept fresh.
    """

    log = Logger(namespace="txmsg.worker.service")
    #: also its service name in the worker's tree
    name = "redis-streams"

    def __init__(
        self,
        url: str,
        worker_name: str,
        *,
        visibility_timeout: float = 30.0,
        block: float = 1.0,
        reply_ttl: float = 3600.0,
        max_priority: int | None = None,
        reactor: IReactorTime,
        events: IEventSink | None = None,
        connect: Callable[..., Any] | None = None,
    ) -> None:
        """
        @param url: the Redis URL.
        @param worker_name: this worker's consumer name, also put in the
            headers of dead letters.
        @param visibility_timeout: see the class docs.
        @param block: seconds each blocking read waits at most (a stop
            waits for it).
        @param reply_ttl: seconds a reply stream is kept after its last reply.
        @param max_priority: read one stream per priority level 0 to this
            (1 to 255), highest first; L{None}: one stream.
        @param connect: makes a (not started) connection service, called
            with C{command_timeout=} (default: a L{RedisConnection} on
            C{url}); L{txmsg.testing.MemoryRedis.connection} in tests.
        """
        super().__init__()
        if visibility_timeout <= 0 or block <= 0:
            raise ValueError("need visibility_timeout > 0 and block > 0")
        if max_priority is not None and not 1 <= max_priority <= 255:
            raise ValueError("max_priority must be from 1 to 255")
        self.max_priority = max_priority
        self.url = url
        self.worker_name = worker_name
        self.visibility_timeout = visibility_timeout
        self.block = block
        self.reply_ttl = reply_ttl
        self.clock = reactor
        if connect is None:

            def connect(command_timeout: float = 5.0) -> Any:
                return RedisConnection(
                    url,
                    decode_responses=False,
                    command_timeout=command_timeout,
                    reactor=reactor,
                    events=events,
                )

        self.connect = connect
        self.commands = connect(command_timeout=5.0)
        self.commands.setName("commands")
        self.commands.setServiceParent(self)
        self.keys: dict[str, StreamKeys] = {}
        self.delays: dict[str, DelayQueue] = {}

    def stopService(self) -> Deferred[None]:
        """
        Stop the retry movers, then the command connection they use (a
        move in flight finishes first).
        """
        Service.stopService(self)
        movers = [s for s in self if s is not self.commands]
        return Deferred.fromCoroutine(stop_in_order(movers + [self.commands], self.log))

    def declare(self, queue: str, retry_delays: Sequence[float], queue_type: str | None) -> None:
        """
        Note C{queue}'s keys and start its retry mover; the consumer group
        is created (C{MKSTREAM}) when its consumer starts.
        """
        if queue in self.keys:
            return
        keys = self.keys[queue] = StreamKeys(queue)
        delays = DelayQueue(
            self.commands, queue, namespace=keys.delay_namespace, reactor=self.clock
        )
        self.delays[queue] = delays
        levels = keys.max_priority if self.max_priority else None
        target = _StreamTarget(keys.stream, levels)
        poller = DelayPoller(delays, target=target, max_sleep=1.0)
        poller.setServiceParent(self)

    def consume(
        self,
        queue: str,
        handler: Callable[[IncomingMessage], Awaitable[Any]],
        prefetch: int,
        give_back: Callable[[IncomingMessage], Awaitable[Any]] | None = None,
    ) -> StreamConsumer:
        """
        A running L{StreamConsumer} of C{queue}.
        """
        if queue not in self.keys:
            self.declare(queue, (), None)
        return StreamConsumer(self, queue, handler, prefetch, give_back)

    # -- settling ---------------------------------------------------------------

    def _fields(self, message: IncomingMessage, headers: dict[str, Any]) -> list[bytes]:
        merged = dict(message.headers) if isinstance(message.headers, dict) else {}
        merged.pop(DELIVERY_COUNT_HEADER, None)
        merged.update(headers)
        return streams.encode_entry(
            message.body,
            merged,
            content_type=message.content_type,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            priority=getattr(message.handle, "priority", None),
        )

    def settle(self, message: IncomingMessage, decision: Decision) -> Deferred[Any]:
        """
        Carry C{decision} out and ack, in one script; fire with L{ACKED}
        (or L{LEFT} for an entry left pending).
        """
        h = self.commands.handler
        keys = self.keys[message.queue]
        entry_id = message.handle.entry_id
        stream = message.handle.stream
        replying: Deferred[Any] | None = None
        if isinstance(decision, Ack):
            d = streams.settle(h, keys, entry_id, stream=stream)
        elif isinstance(decision, Reply):
            replying = self.reply(message, decision.body, decision.content_type)
            d = streams.settle(h, keys, entry_id, stream=stream)
        elif isinstance(decision, Retry):
            d = self._retry(message, decision)
        elif isinstance(decision, Requeue):
            return self._requeue(message, decision)
        elif isinstance(decision, Delay):
            headers = uncounted_headers(decision.attempts, decision.redelivered)
            d = self._later(message, headers, decision.seconds)
        else:
            if decision.reply is not None:
                replying = self.reply(message, decision.reply, CONTENT_TYPE)
            d = self._dead_letter(message, decision)
        if replying is not None:
            d = gatherResults([replying, d], consumeErrors=True)
        return d.addCallback(lambda _: ACKED)

    def _retry(self, message: IncomingMessage, retry: Retry) -> Deferred[Any]:
        headers: dict[str, Any] = {ATTEMPT_HEADER: retry.attempts}
        if retry.redelivered:
            headers[REDELIVERED_HEADER] = 1
        wait = retry.expiration_ms / 1000.0 if retry.expiration_ms else retry.delay
        return self._later(message, headers, wait if retry.delay > 0 else 0.0)

    def _later(
        self, message: IncomingMessage, headers: dict[str, Any], wait: float
    ) -> Deferred[Any]:
        # A copy back in the stream now, or in the delay set until it is due.
        fields = self._fields(message, headers)
        keys = self.keys[message.queue]
        h = self.commands.handler
        entry_id = message.handle.entry_id
        stream = message.handle.stream
        if wait <= 0:
            return streams.settle(h, keys, entry_id, "add", fields, stream=stream)
        due = self.clock.seconds() + wait
        d = streams.settle(h, keys, entry_id, "later", fields, due, uuid.uuid4().hex, stream=stream)
        delays = self.delays[message.queue]

        def scheduled(result: Any) -> Any:
            delays._notify(due)  # wakes this worker's mover when due sooner
            return result

        return d.addCallback(scheduled)

    def _requeue(self, message: IncomingMessage, requeue: Requeue) -> Deferred[Any]:
        # Counted: the copy carries this run in its attempt count (as a
        # broker's delivery count would); when even that fails, the entry is
        # left pending for the visibility timeout.
        headers: dict[str, Any] = {}
        if requeue.counted:
            try:
                facts = read_headers(message.headers)
            except BadHeaders:
                return succeed(LEFT)
            headers[ATTEMPT_HEADER] = facts.attempts + (facts.delivery_count or 0) + 1
            headers[REDELIVERED_HEADER] = 1
        else:
            headers = uncounted_headers(requeue.attempts, requeue.redelivered)
        d = streams.settle(
            self.commands.handler,
            self.keys[message.queue],
            message.handle.entry_id,
            "add",
            self._fields(message, headers),
            stream=message.handle.stream,
        )
        d.addCallback(lambda _: ACKED)
        if requeue.counted:
            d.addErrback(lambda f: LEFT)
        return d

    def _dead_letter(self, message: IncomingMessage, dead: DeadLetter) -> Deferred[Any]:
        headers = dead_letter_headers(dead, message.queue, self.worker_name, int(time.time()))
        fields = self._fields(message, headers)
        error = "{}: {}".format(dead.error_type, dead.error_message[:1000])
        fields += [b"reason", dead.reason.encode("utf-8"), b"error", error.encode("utf-8")]
        fields += [b"attempts", str(dead.attempts or 0).encode("ascii")]
        return streams.settle(
            self.commands.handler,
            self.keys[message.queue],
            message.handle.entry_id,
            "dead",
            fields,
            stream=message.handle.stream,
        )

    def reply(self, message: IncomingMessage, body: bytes, content_type: str) -> Deferred[None]:
        """
        Add the reply to the stream named by C{reply_to} (kept C{reply_ttl}
        seconds) with the C{correlation_id}.
        """
        if not message.reply_to:
            return succeed(None)
        fields = streams.encode_entry(
            body, None, content_type=content_type, correlation_id=message.correlation_id
        )
        d = streams.reply(self.commands.handler, message.reply_to, fields, self.reply_ttl)
        return d.addCallback(lambda _: None)
