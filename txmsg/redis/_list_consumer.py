# -*- test-case-name: txmsg.test.test_redis_list_queue -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The reliable list queue's consumer service (re-exported by
L{txmsg.redis.list_queue}).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._waiters import InFlight
from txmsg.events import IEventSink
from txmsg.redis import _list_scripts as scripts
from txmsg.redis._common import call, handler_of, is_redis_unavailable, sleep
from txmsg.redis.connection import RedisConnection
from txmsg.redis.service import RedisService

if TYPE_CHECKING:  # a type only: list_queue.py imports this module
    from txmsg.redis.list_queue import ReliableQueue

__all__ = ["BlockingPopTimeout", "ListConsumer"]


class BlockingPopTimeout(Exception):
    """
    A blocking pop got no reply well after its own server-side timeout.
    """


class ListConsumer(Service):
    """
    Takes items from a L{ReliableQueue} into its own processing list and
    calls C{callback(payload)} for each (see the module docs of
    L{txmsg.redis.list_queue} for the guarantees).

    @ivar consumer_id: this consumer's id (processing list and heartbeat).
    @ivar done: fires with the number of items handled when the consumer
        stops (burst mode: when the queue was found empty).
    @ivar handled: items acked; C{failed}: callbacks that failed.
    """

    log = Logger()

    def __init__(
        self,
        queue: ReliableQueue,
        callback: Callable[[Any], Any] | None = None,
        *,
        mode: str = "block",
        consumer_id: str | None = None,
        block_timeout: float = 1.0,
        heartbeat_ttl: float = 15.0,
        concurrency: int = 1,
        on_failure: str = "dead",
        blocking_redis: Any = None,
        events: IEventSink | None = None,
        event: str | None = None,
        error_delay: float = 1.0,
        grace: float = 5.0,
    ) -> None:
        """
        @param queue: the L{ReliableQueue}.
        @param callback: C{callback(payload)}; value, Deferred or coroutine;
            raising means failure.
        @param mode: C{"block"} (blocking pops, forever) or C{"burst"} (pop
            until empty, then stop).
        @param consumer_id: stable id; reusing one after a crash makes the
            new consumer take back the old processing list at once.
            Default: random.
        @param block_timeout: server-side timeout of each blocking pop (s).
        @param heartbeat_ttl: seconds without heartbeat after which other
            consumers recover this one's items.
        @param concurrency: callbacks in flight at once.
        @param on_failure: C{"dead"} (to C{Q:dead}) or C{"requeue"}.
        @param blocking_redis: the connection for blocking pops (a
            L{RedisConnection} of poolsize 1 or a handler).  Default: one is
            made from the queue's connection URL and owned by this consumer.
        @param events: event sink; with C{event}, payloads are dispatched as
            C{events.dispatch(event, payload, source="redis-list:<name>")}.
        @param error_delay: pause after a failed pop (Redis down).
        @param grace: extra seconds allowed for a blocking pop's reply.
        """
        if mode not in ("block", "burst"):
            raise ValueError("mode must be 'block' or 'burst'")
        if on_failure not in ("dead", "requeue"):
            raise ValueError("on_failure must be 'dead' or 'requeue'")
        if (callback is None) == (event is None) or (event is not None and events is None):
            raise TypeError("give a callback, or event= with events=")
        self.queue = queue
        self.callback = callback
        self.mode = mode
        self.consumer_id = consumer_id or uuid.uuid4().hex
        self.block_timeout = block_timeout
        self.heartbeat_ttl = heartbeat_ttl
        self.concurrency = concurrency
        self.on_failure = on_failure
        self.events = events
        self.event = event
        self.error_delay = error_delay
        self.grace = grace
        self.handled = 0
        self.failed = 0
        self.done: Deferred[int] = Deferred()
        self.processing_key = queue.processing_key(self.consumer_id)
        self.heartbeat_key = queue.heartbeat_key(self.consumer_id)
        self._clock = queue.reactor
        self._blocking = blocking_redis
        self._owns_blocking = False
        self._use_blmove = True
        self._in_flight = InFlight()
        self._room: Deferred[None] | None = None
        self._stranded = False
        self._beats: LoopingCall | None = None
        self._beat_count = 0
        self._loop: Deferred[None] | None = None
        self._pop: Deferred[Any] | None = None

    @property
    def _handler(self) -> Any:
        return handler_of(self.queue._redis)

    def startService(self) -> None:
        """
        Register (heartbeat), recover dead consumers' items, start popping.
        """
        super().startService()
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(lambda f: self.log.failure("List consumer loop failed", f))

    def stopService(self) -> Deferred[None]:
        """
        Stop popping; finish the callbacks in flight; give back anything left
        in the processing list; unregister.  Fires when done.
        """
        was_running = self.running
        super().stopService()
        self._wake_room()
        if not was_running or self._loop is None:
            return Deferred.fromCoroutine(self._noop())
        out: Deferred[None] = Deferred()

        def fire(result: Any) -> Any:
            out.callback(None)
            return result

        self._loop.addBoth(fire)
        return out

    async def _noop(self) -> None:
        return None

    # the loop

    async def _run(self) -> None:
        try:
            await self._beat()
            lc = LoopingCall(self._tick)
            lc.clock = self._clock
            self._beats = lc
            lc.start(self.heartbeat_ttl / 3.0, now=False)
            await self._sweep(own=True)
            if self.mode == "block":
                await self._connect_blocking()
            while self.running:
                if len(self._in_flight) >= self.concurrency:
                    self._room = Deferred()
                    await self._room
                    continue
                if self._stranded:
                    await self._drain()
                    try:
                        await self._sweep(own=True)
                    except Exception as e:
                        # Redis still away (a failover): stay stranded and
                        # try again, as after a failed pop.
                        if not self.running:
                            break
                        await self._retry_later("Taking back items of", e)
                        continue
                    self._stranded = False
                    continue
                try:
                    raw = await self._fetch()
                except Exception as e:
                    if not self.running:
                        break
                    self._stranded = True
                    await self._retry_later("Pop from", e)
                    continue
                if raw is None:
                    if self.mode == "burst":
                        break
                    continue
                self._start(raw)
        finally:
            await self._shutdown()

    async def _retry_later(self, what: str, error: Exception) -> None:
        """
        Log that C{what} the queue failed with C{error}, and wait
        C{error_delay} before the loop tries again.
        """
        self.log.warn(
            "{what} {key} failed ({error}); retrying", what=what, key=self.queue.key, error=error
        )
        await sleep(self._clock, self.error_delay)

    async def _shutdown(self) -> None:
        try:
            await self._drain()
            if self._beats is not None and self._beats.running:
                self._beats.stop()
            # Heartbeat first, then the non-forced recovery: it gives back
            # what is left and unregisters only if the list ended up empty,
            # so an item a late pop reply moves in afterwards is still
            # found by other consumers' sweeps.
            await self._handler.execute_command("DEL", self.heartbeat_key)
            moved = await self.queue.recover_consumer(self.consumer_id)
            if moved:
                self.log.info("Gave back {n} unprocessed item(s)", n=moved)
        except Exception:
            self.log.failure("List consumer {id} did not unregister cleanly", id=self.consumer_id)
        finally:
            if self._owns_blocking and self._blocking is not None:
                await self._blocking.stopService()
            if self.running and self.mode == "burst":
                Service.stopService(self)
            if not self.done.called:
                self.done.callback(self.handled)

    async def _connect_blocking(self) -> None:
        if self._blocking is None:
            base = self.queue._redis
            if isinstance(base, RedisService):
                base = base.connection
            if not isinstance(base, RedisConnection):
                raise TypeError(
                    "block mode needs blocking_redis= when the queue was not "
                    "given a RedisConnection/RedisService"
                )
            self._blocking = RedisConnection(
                base.url,
                poolsize=1,
                command_timeout=base.command_timeout,
                decode_responses=base.decode_responses,
                reactor=self._clock,
            )
            self._owns_blocking = True
            self._blocking.startService()
            await self._blocking.when_connected(timeout=base.connect_timeout)

    def _blocking_handler(self) -> Any:
        if isinstance(self._blocking, RedisConnection):
            return self._blocking.raw_handler
        return self._blocking

    def _fetch(self) -> Deferred[Any]:
        q, p = self.queue.key, self.processing_key
        if self.mode == "burst":
            return self._handler.execute_command("LMOVE", q, p, "RIGHT", "LEFT")
        h = self._blocking_handler()
        t = repr(float(self.block_timeout))
        if self._use_blmove:
            d = h.execute_command("BLMOVE", q, p, "RIGHT", "LEFT", t)
        else:
            d = h.execute_command("BRPOPLPUSH", q, p, t)

        def old_server(f: Failure) -> Any:
            if self._use_blmove and "unknown command" in f.getErrorMessage().lower():
                self._use_blmove = False
                return self._fetch()
            return f

        d.addErrback(old_server)
        limit = self.block_timeout + self.grace

        def timed_out(result: Any, _t: float) -> Any:
            if isinstance(result, Failure) and result.check(CancelledError):
                raise BlockingPopTimeout(
                    f"no reply to a {self.block_timeout:g} s pop in {limit:g} s"
                )
            return result

        return d.addTimeout(limit, self._clock, onTimeoutCancel=timed_out)

    def _wake_room(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.called:
            room.callback(None)

    async def _drain(self) -> None:
        await self._in_flight.drain()

    # heartbeat and recovery

    def _beat(self) -> Deferred[Any]:
        h = self._handler
        ms = max(1, int(self.heartbeat_ttl * 1000))
        d = h.execute_command("SET", self.heartbeat_key, "1", "PX", ms)
        d.addCallback(
            lambda _: h.execute_command("SADD", self.queue.consumers_key, self.consumer_id)
        )
        return d

    def _tick(self) -> Deferred[None]:
        self._beat_count += 1
        d = self._beat()
        if self._beat_count % 3 == 0:
            d.addCallback(lambda _: self._sweep(own=False))
        d.addErrback(
            lambda f: self.log.warn("Heartbeat failed: {error}", error=f.getErrorMessage())
        )
        return d.addCallback(lambda _: None)

    def _sweep(self, own: bool) -> Deferred[None]:
        async def go() -> None:
            if own:
                n = await self.queue.recover_consumer(self.consumer_id, force=True)
                if n:
                    self.log.info("Took back {n} item(s) left in our processing list", n=n)
            n = await self.queue.recover(exclude=self.consumer_id)
            if n:
                self.log.warn(
                    "Recovered {n} item(s) from dead consumers of {key}",
                    n=n,
                    key=self.queue.key,
                )

        return Deferred.fromCoroutine(go())

    # one item

    def _start(self, raw: Any) -> None:
        d = Deferred.fromCoroutine(self._handle(raw))
        self._in_flight.enter()

        def finished(result: Any) -> None:
            self._in_flight.leave()
            self._wake_room()
            if isinstance(result, Failure) and is_redis_unavailable(result):
                # Redis went away (a restart, a Sentinel failover): the item
                # stays in our processing list and is recovered later.
                self.log.warn(
                    "Bookkeeping of an item of {key} failed ({error}); it stays in the "
                    "processing list and is recovered (it may run twice)",
                    key=self.queue.key,
                    error=result.getErrorMessage(),
                )
            elif isinstance(result, Failure):
                self.log.failure("Bookkeeping of a list item failed", result)

        d.addBoth(finished)

    async def _handle(self, raw: Any) -> None:
        try:
            payload = self.queue.serializer.loads(_bytes(raw))
        except Exception as e:
            self.log.warn(
                "Undecodable item on {key}: {error}; dead-lettered",
                key=self.queue.key,
                error=e,
            )
            await scripts.FAIL(self._handler, [self.processing_key, self.queue.dead_key], [raw])
            self.failed += 1
            return
        try:
            if self.callback is not None:
                await call(self.callback, payload)
            else:
                assert self.events is not None  # the constructor requires it with event=
                result = await call(
                    self.events.dispatch,
                    self.event,
                    payload,
                    source="redis-list:" + self.queue.name,
                )
                if not result.outcomes:
                    raise LookupError(f"no handler for event {self.event!r}")
                result.raise_first_failure()
        except Exception:
            self.failed += 1
            self.log.failure(
                "Callback failed for an item of {key} ({action})",
                key=self.queue.key,
                action=self.on_failure,
            )
            if self.on_failure == "dead":
                await scripts.FAIL(self._handler, [self.processing_key, self.queue.dead_key], [raw])
            else:
                await scripts.REQUEUE(self._handler, [self.processing_key, self.queue.key], [raw])
            return
        removed = await self._handler.execute_command("LREM", self.processing_key, 1, raw)
        self.handled += 1
        if not removed:
            self.log.warn(
                "An item of {key} was recovered by another consumer while we "
                "handled it (it may be delivered twice)",
                key=self.queue.key,
            )


def _bytes(raw: Any) -> bytes:
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
