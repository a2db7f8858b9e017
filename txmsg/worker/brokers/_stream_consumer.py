# -*- test-case-name: txmsg.test.test_worker_redis_streams -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Redis Streams broker's consumer (re-exported by
L{txmsg.worker.brokers.redis_streams}, whose module docs describe it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from txmsg._lograte import should_log
from txmsg._waiters import InFlight, Waiters
from txmsg.redis import streams
from txmsg.redis._common import sleep
from txmsg.redis.streams import GROUP, StreamEntry
from txmsg.worker._lifecycle import one_line
from txmsg.worker.brokers.interfaces import IncomingMessage
from txmsg.worker.headers import DELIVERY_COUNT_HEADER

if TYPE_CHECKING:  # a type only: redis_streams.py imports this module
    from txmsg.worker.brokers.redis_streams import RedisStreamsBroker

__all__ = ["ACKED", "LEFT", "StreamConsumer"]

#: What L{RedisStreamsBroker.settle} fires with: the entry was acked, or
#: left pending (another worker claims it after the visibility timeout).
ACKED, LEFT = "acked", "left"


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
        #: the streams read, highest priority level first
        self.streams = self.keys.levels(broker.max_priority)
        self.handler = handler
        self.give_back = give_back
        self.prefetch = prefetch
        self.consumer = broker.worker_name
        self.consuming = False
        self.acked = self.left = 0
        self._clock = broker.clock
        self._running = True
        self._held: dict[str, str | None] = {}
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
                        await self._ensure_groups()
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
                        claimed = await self._claim(room)
                        if claimed:
                            self.log.warn(
                                "Claimed {n} entr(ies) of {queue} from dead consumers",
                                n=len(claimed),
                                queue=self.queue,
                            )
                            for entry in claimed:
                                self._start(entry)
                            continue
                    entries = await self._read(room)
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
                backlog = len(entries) >= room
                for entry in entries:
                    self._start(entry)
            await self._in_flight.drain()
        finally:
            self.consuming = False
            if self._touch.running:
                self._touch.stop()
            await self._blocking.stopService()

    async def _ensure_groups(self) -> None:
        h = self.broker.commands.handler
        for stream in self.streams:
            await streams.ensure_group(h, stream)
        if self.broker.max_priority:
            await h.execute_command("SET", self.keys.max_priority, self.broker.max_priority)
        else:
            await h.execute_command("DEL", self.keys.max_priority)

    async def _claim(self, room: int) -> list[StreamEntry]:
        claimed: list[StreamEntry] = []
        for stream in self.streams:
            if len(claimed) >= room:
                break
            claimed += await streams.claim(
                self.broker.commands.handler,
                self.keys,
                self.consumer,
                self.broker.visibility_timeout,
                room - len(claimed),
                stream,
            )
        return claimed

    async def _read(self, room: int) -> list[StreamEntry]:
        # One stream: a blocking read.  Levels: what the highest non-empty
        # levels hold (one script), else a blocking read of one entry from
        # any level (a few more than the window when several arrive at once).
        block = ["BLOCK", max(1, int(self.broker.block * 1000))]
        if len(self.streams) > 1:
            entries = await streams.read_levels(
                self.broker.commands.handler, self.streams, self.consumer, room
            )
            if entries:
                return entries
            room = 1
        reply = await self._blocking.raw_handler.execute_command(
            "XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", room, *block,
            "STREAMS", *self.streams, *[">"] * len(self.streams),
        )  # fmt: skip
        return streams.parse_entries(reply)

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
        self._held[entry.entry_id] = entry.stream
        self._in_flight.enter()

        def done(result: Any) -> None:
            self._held.pop(entry.entry_id, None)
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
        by_stream: dict[str, list[str]] = {}
        for entry_id, stream in self._held.items():
            by_stream.setdefault(stream or self.keys.stream, []).append(entry_id)
        calls = []
        for stream, ids in sorted(by_stream.items()):
            d: Deferred[Any] = h.execute_command(
                "XCLAIM", stream, GROUP, self.consumer, 0, *sorted(ids), "JUSTID"
            )
            calls.append(d.addErrback(lambda f: None))
        return gatherResults(calls)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
