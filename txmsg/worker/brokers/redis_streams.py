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
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from txmsg._lograte import should_log
from txmsg._waiters import InFlight, Waiters
from txmsg.events import IEventSink
from txmsg.redis import streams
from txmsg.redis._common import sleep
from txmsg.redis.connection import RedisConnection
from txmsg.redis.delay_queue import DelayPoller, DelayQueue
from txmsg.redis.streams import GROUP, StreamEntry, StreamKeys
from txmsg.worker._lifecycle import one_line
from txmsg.worker.brokers.interfaces import IncomingMessage, IWorkerBroker
from txmsg.worker.decisions import Ack, DeadLetter, Decision, Reply, Requeue, Retry
from txmsg.worker.envelope import CONTENT_TYPE
from txmsg.worker.headers import (
    ATTEMPT_HEADER,
    DELIVERY_COUNT_HEADER,
    REDELIVERED_HEADER,
    BadHeaders,
    dead_letter_headers,
    read_headers,
)

__all__ = ["ACKED", "LEFT", "RedisStreamsBroker", "StreamConsumer"]

#: What L{RedisStreamsBroker.settle} fires with: the entry was acked, or
#: left pending (another worker claims it after the visibility timeout).
ACKED, LEFT = "acked", "left"


class _StreamTarget:
    """What a L{DelayPoller} moves due retries into: a stream."""

    kind = "stream"

    def __init__(self, key: str) -> None:
        self.key = key


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
        @param connect: makes a (not started) connection service, called
            with C{command_timeout=} (default: a L{RedisConnection} on
            C{url}); L{txmsg.testing.MemoryRedis.connection} in tests.
        """
        super().__init__()
        if visibility_timeout <= 0 or block <= 0:
            raise ValueError("need visibility_timeout > 0 and block > 0")
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

    def declare(self, queue: str, retry_delays: Sequence[float], queue_type: str | None) -> None:
        """
        Note C{queue}'s keys and start its retry mover; the consumer group
        is created (C{MKSTREAM}) when its consumer starts.
        """
        if queue in self.keys:
            return
        keys = self.keys[queue] = StreamKeys(queue)
        delays = DelayQueue(
            self.commands, "delay", namespace=keys.delay_namespace, reactor=self.clock
        )
        self.delays[queue] = delays
        poller = DelayPoller(delays, target=_StreamTarget(keys.stream), max_sleep=1.0)
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
        )

    def settle(self, message: IncomingMessage, decision: Decision) -> Deferred[Any]:
        """
        Carry C{decision} out and ack, in one script; fire with L{ACKED}
        (or L{LEFT} for an entry left pending).
        """
        h = self.commands.handler
        keys = self.keys[message.queue]
        entry_id = message.handle.entry_id
        replying: Deferred[Any] | None = None
        if isinstance(decision, Ack):
            d = streams.settle(h, keys, entry_id)
        elif isinstance(decision, Reply):
            replying = self.reply(message, decision.body, decision.content_type)
            d = streams.settle(h, keys, entry_id)
        elif isinstance(decision, Retry):
            d = self._retry(message, decision)
        elif isinstance(decision, Requeue):
            return self._requeue(message, decision)
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
        fields = self._fields(message, headers)
        keys = self.keys[message.queue]
        h = self.commands.handler
        entry_id = message.handle.entry_id
        if retry.delay <= 0:
            return streams.settle(h, keys, entry_id, "add", fields)
        wait = (retry.expiration_ms or retry.delay * 1000) / 1000.0
        due = self.clock.seconds() + wait
        d = streams.settle(h, keys, entry_id, "later", fields, due, uuid.uuid4().hex)
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
            if requeue.attempts:
                headers[ATTEMPT_HEADER] = requeue.attempts
            if requeue.redelivered:
                headers[REDELIVERED_HEADER] = 1
        d = streams.settle(
            self.commands.handler,
            self.keys[message.queue],
            message.handle.entry_id,
            "add",
            self._fields(message, headers),
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


class StreamConsumer:
    """
    One worker's consumer of one work stream (see the module docs).

    @ivar consuming: the consumer group exists and this consumer reads it.
    @ivar acked: entries settled and acked; C{left}: left pending.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(
        self,
        broker: RedisStreamsBroker,
        queue: str,
        handler: Callable[[IncomingMessage], Awaitable[Any]],
        prefetch: int,
        give_back: Callable[[IncomingMessage], Awaitable[Any]] | None,
    ) -> None:
        self.broker = broker
        self.queue = queue
        self.keys = broker.keys[queue]
        self.handler = handler
        self.give_back = give_back
        self.prefetch = prefetch
        self.consumer = broker.worker_name
        self.consuming = False
        self.acked = self.left = 0
        self._clock = broker.clock
        self._running = True
        self._held: set[str] = set()
        self._in_flight = InFlight(self._clock)
        self._room: Deferred[None] | None = None
        self._consuming_waiters: Waiters[None] = Waiters(self._clock)
        self._failures = 0
        self._blocking = broker.connect(command_timeout=broker.block + 10.0)
        self._touch = LoopingCall(self._refresh)
        self._touch.clock = self._clock
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(lambda f: self.log.failure("Stream consumer loop failed", f))

    def __repr__(self) -> str:
        return "<StreamConsumer {} of {}>".format(self.consumer, self.keys.stream)

    def when_consuming(self) -> Deferred[None]:
        """
        Fire once the consumer reads its stream.
        """
        if self.consuming:
            return succeed(None)
        return self._consuming_waiters.wait()

    def stop(self) -> Deferred[None]:
        """
        Stop reading; fire when every entry read was settled (what a last
        read brings after the stop is handed back uncounted).
        """
        self._running = False
        self._wake()
        out: Deferred[None] = Deferred()
        self._loop.addBoth(lambda r: out.callback(None) if not out.called else None)
        return out

    def _wake(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.called:
            room.callback(None)

    async def _run(self) -> None:
        commands = self.broker.commands
        self._blocking.startService()
        self._touch.start(self.broker.visibility_timeout / 3.0, now=False)
        ready = backlog = False
        next_claim = 0.0
        try:
            while self._running:
                room = self.prefetch - len(self._in_flight)
                # With a backlog (the last read was full), read in batches:
                # wait for half the window, not one slot, so that a read
                # brings many entries instead of one per settled task.
                batch = backlog and self._in_flight and room < (self.prefetch + 1) // 2
                if room <= 0 or batch:
                    self._room = Deferred()
                    await self._room
                    continue
                try:
                    if not ready:
                        await streams.ensure_group(commands.handler, self.keys.stream)
                        ready = self.consuming = True
                        self.log.info(
                            "Consuming {queue} (stream {stream}, group {group}, prefetch {n})",
                            queue=self.queue,
                            stream=self.keys.stream,
                            group=GROUP,
                            n=self.prefetch,
                        )
                        self._consuming_waiters.fire(None)
                    if self._clock.seconds() >= next_claim:
                        next_claim = self._clock.seconds() + self.broker.visibility_timeout / 3.0
                        claimed = await streams.claim(
                            commands.handler,
                            self.keys,
                            self.consumer,
                            self.broker.visibility_timeout,
                            room,
                        )
                        if claimed:
                            self.log.warn(
                                "Claimed {n} entr(ies) of {queue} from dead consumers",
                                n=len(claimed),
                                queue=self.queue,
                            )
                            for entry in claimed:
                                self._start(entry)
                            continue
                    reply = await self._blocking.raw_handler.execute_command(
                        "XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", room,
                        "BLOCK", max(1, int(self.broker.block * 1000)),
                        "STREAMS", self.keys.stream, ">",
                    )  # fmt: skip
                except Exception as e:
                    if not self._running:
                        break
                    if "NOGROUP" in str(e):
                        ready = self.consuming = False
                    self._failures += 1
                    if should_log(self._failures):
                        self.log.warn(
                            "Reading {queue} from Redis failed ({error}); retrying",
                            queue=self.queue,
                            error=str(e) or type(e).__name__,
                        )
                    await sleep(self._clock, 1.0)
                    continue
                self._failures = 0
                entries = streams.parse_entries(reply)
                backlog = len(entries) >= room
                for entry in entries:
                    self._start(entry)
            await self._in_flight.drain()
        finally:
            self.consuming = False
            if self._touch.running:
                self._touch.stop()
            await self._blocking.stopService()

    def _incoming(self, entry: StreamEntry) -> IncomingMessage:
        headers: Any = entry.headers
        if isinstance(headers, dict):
            headers = dict(headers)
            headers[DELIVERY_COUNT_HEADER] = entry.deliveries - 1
        return IncomingMessage(
            body=entry.body,
            queue=self.queue,
            headers=headers,
            content_type=entry.content_type,
            message_id=entry.message_id,
            reply_to=entry.reply_to,
            correlation_id=entry.correlation_id,
            redelivered=entry.deliveries > 1,
            handle=entry,
        )

    def _start(self, entry: StreamEntry) -> None:
        message = self._incoming(entry)
        if self._running:
            d = Deferred.fromCoroutine(_awaited(self.handler(message)))
        elif self.give_back is not None:
            d = Deferred.fromCoroutine(_awaited(self.give_back(message)))
        else:  # left pending: claimed by others after the visibility timeout
            return
        self._held.add(entry.entry_id)
        self._in_flight.enter()

        def done(result: Any) -> None:
            self._held.discard(entry.entry_id)
            self._in_flight.leave()
            if result == ACKED:
                self.acked += 1
            else:
                self.left += 1
                if not isinstance(result, str):
                    self.log.warn(
                        "Settling an entry of {queue} failed ({error}); it stays pending",
                        queue=self.queue,
                        error=one_line(result) if hasattr(result, "check") else result,
                    )
            self._wake()

        d.addBoth(done)

    def _refresh(self) -> Deferred[Any] | None:
        # Reset the idle time of what we hold, without counting a delivery.
        if not self._held:
            return None
        try:
            h = self.broker.commands.handler
        except Exception:
            return None
        d: Deferred[Any] = h.execute_command(
            "XCLAIM", self.keys.stream, GROUP, self.consumer, 0, *sorted(self._held), "JUSTID"
        )
        d.addErrback(lambda f: None)
        return d


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
