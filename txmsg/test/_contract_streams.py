# -*- test-case-name: txmsg.test.test_contract_redis -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Redis Streams contract: the stream commands and the worker broker's
scripts behave the same on L{txmsg.testing.MemoryRedis} and on a real
Redis.  Mixed into the runners of L{txmsg.test._contract_redis}, whose
C{make_connection(start=False)} gives a connection service not started yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from txmsg.redis import streams
from txmsg.redis.streams import GROUP, StreamKeys
from txmsg.test._contract_base import ContractCase, contract
from txmsg.worker.brokers.interfaces import IncomingMessage
from txmsg.worker.brokers.redis_streams import ACKED, RedisStreamsBroker
from txmsg.worker.decisions import Ack, DeadLetter, Delay, Retry


class StreamsContract(ContractCase):
    """Observable behaviour of streams and the Redis Streams broker."""

    if TYPE_CHECKING:  # provided by each runner's test case

        def make_connection(self, start: bool = True) -> Any: ...
        def forget_prefix(self, prefix: str) -> None: ...

    def queue(self) -> StreamKeys:
        name = self.unique("txmsg-contract-streams")
        self.forget_prefix("txmsg:{" + name + "}")
        self.forget_prefix("txmsg:delay:{" + name + "}")
        return StreamKeys(name)

    @contract
    async def test_stream_group_read_ack(self) -> None:
        """
        A group reads each entry once, in order; XACK removes it from the
        pending list; BUSYGROUP for a second create; a blocked read gets an
        entry added later, and an idle one times out with nil.
        """
        c = self.make_connection()
        await self.wait(c.when_connected(10))
        h, keys = c.handler, self.queue()
        await self.wait(streams.ensure_group(h, keys.stream))
        await self.wait(streams.ensure_group(h, keys.stream))
        first = await self.wait(h.execute_command("XADD", keys.stream, "*", "body", "one"))
        await self.wait(h.execute_command("XADD", keys.stream, "*", "body", "two"))
        reply = await self.wait(
            h.execute_command(
                "XREADGROUP", "GROUP", GROUP, "a", "COUNT", 1, "STREAMS", keys.stream, ">"
            )
        )
        [entry] = streams.parse_entries(reply)
        self.assertEqual((entry.entry_id, entry.body), (first, b"one"))
        summary = await self.wait(h.execute_command("XPENDING", keys.stream, GROUP))
        self.assertEqual(int(summary[0]), 1)
        self.assertEqual(await self.wait(h.execute_command("XACK", keys.stream, GROUP, first)), 1)
        self.assertEqual(await self.wait(h.execute_command("XACK", keys.stream, GROUP, first)), 0)
        reply = await self.wait(
            h.execute_command(
                "XREADGROUP", "GROUP", GROUP, "a", "COUNT", 5, "STREAMS", keys.stream, ">"
            )
        )
        self.assertEqual([e.body for e in streams.parse_entries(reply)], [b"two"])
        blocking = self.make_connection()
        await self.wait(blocking.when_connected(10))
        idle = blocking.handler.execute_command(
            "XREADGROUP", "GROUP", GROUP, "a", "BLOCK", 200, "STREAMS", keys.stream, ">"
        )
        self.assertIsNone(await self.wait(idle))
        waiting = blocking.handler.execute_command(
            "XREADGROUP", "GROUP", GROUP, "b", "BLOCK", 5000, "STREAMS", keys.stream, ">"
        )
        fired: list[Any] = []
        waiting.addBoth(lambda r: fired.append(r) or r)
        await self.sleep(0.1)
        self.assertEqual(fired, [])
        await self.wait(h.execute_command("XADD", keys.stream, "*", "body", "three"))
        self.assertEqual(
            [e.body for e in streams.parse_entries(await self.wait(waiting))], [b"three"]
        )

    @contract
    async def test_claim_counts_deliveries(self) -> None:
        """
        An entry idle longer than the timeout is claimed by another
        consumer with its delivery count (2); one not idle long enough is
        not; XCLAIM ... JUSTID refreshes without counting.
        """
        c = self.make_connection()
        await self.wait(c.when_connected(10))
        h, keys = c.handler, self.queue()
        await self.wait(streams.ensure_group(h, keys.stream))
        await self.wait(h.execute_command("XADD", keys.stream, "*", "body", "x"))
        reply = await self.wait(
            h.execute_command("XREADGROUP", "GROUP", GROUP, "a", "STREAMS", keys.stream, ">")
        )
        [entry] = streams.parse_entries(reply)
        self.assertEqual(await self.wait(streams.claim(h, keys, "b", 5.0, 10)), [])
        await self.sleep(0.3)
        await self.wait(
            h.execute_command("XCLAIM", keys.stream, GROUP, "a", 0, entry.entry_id, "JUSTID")
        )
        self.assertEqual(await self.wait(streams.claim(h, keys, "b", 0.2, 10)), [])
        await self.sleep(0.3)
        [claimed] = await self.wait(streams.claim(h, keys, "b", 0.2, 10))
        self.assertEqual(
            (claimed.entry_id, claimed.body, claimed.deliveries), (entry.entry_id, b"x", 2)
        )

    @contract
    async def test_broker_settles(self) -> None:
        """
        The broker acks and deletes a done entry, dead-letters with the
        reason, retries at once, and retries (or delays, uncounted) later
        through the delay set (moved back by the poller); nothing is left in
        the stream.
        """
        keys = self.queue()
        broker = RedisStreamsBroker(
            "redis://unused",
            "contract-worker",
            reactor=self.clock,
            visibility_timeout=5.0,
            block=0.2,
            connect=lambda command_timeout=5.0: self.make_connection(start=False),
        )
        broker.declare(keys.queue, [0.3], None)
        broker.startService()
        self.on_cleanup(broker.stopService)
        seen: list[tuple[bytes, int]] = []

        def handle(message: IncomingMessage) -> Any:
            attempts = int(message.headers.get("x-txmsg-attempts", 0))
            seen.append((message.body, attempts))
            decision: Any = Ack()
            if message.body == b"dead":
                decision = DeadLetter("failed", "ValueError", "no")
            elif message.body in (b"later", b"again") and attempts == 0:
                decision = Retry(0.3 if message.body == b"later" else 0.0, 1)
            elif message.body == b"delay" and seen.count((b"delay", 0)) == 1:
                decision = Delay(0.3)  # not a run: the attempts stay 0
            return broker.settle(message, decision)

        consumer = broker.consume(keys.queue, handle, 10)
        self.on_cleanup(consumer.stop)
        await self.wait(consumer.when_consuming())
        h = broker.commands.handler
        for body in (b"ok", b"dead", b"later", b"again", b"delay"):
            fields = streams.encode_entry(body, {"k": "v"}, content_type="text/plain")
            await self.wait(h.execute_command("XADD", keys.stream, "*", *fields))
        await self.eventually(lambda: len(seen) == 8, timeout=10)
        self.assertEqual(
            sorted(seen),
            sorted(
                [
                    (b"ok", 0),
                    (b"dead", 0),
                    (b"later", 0),
                    (b"again", 0),
                    (b"again", 1),
                    (b"later", 1),
                    (b"delay", 0),
                    (b"delay", 0),
                ]
            ),
        )
        dead = await self.wait(h.execute_command("XRANGE", keys.dead, "-", "+"))
        [letter] = [streams.decode_entry(i, f) for i, f in dead]
        self.assertEqual((letter.body, letter.headers["x-txmsg-reason"]), (b"dead", "failed"))
        self.assertEqual(letter.headers["k"], "v")
        await self.eventually(lambda: consumer.acked == 8)
        self.assertEqual(await self.wait(h.execute_command("XLEN", keys.stream)), 0)
        self.assertEqual(ACKED, "acked")

    @contract
    async def test_priority_levels(self) -> None:
        """
        The add script picks the level stream from the max-priority key
        (capped; level 0 without the key or a priority) or schedules in the
        delay set; the read script reads the levels highest first up to its
        count; a blocked read of several streams wakes on any of them.
        """
        c = self.make_connection()
        await self.wait(c.when_connected(10))
        h, keys = c.handler, self.queue()
        levels = keys.levels(2)
        for stream in levels:
            await self.wait(streams.ensure_group(h, stream))
        await self.wait(streams.add(h, keys, streams.encode_entry(b"early", priority="2")))
        self.assertEqual(await self.wait(h.execute_command("XLEN", keys.stream)), 1)
        await self.wait(h.execute_command("SET", keys.max_priority, 2))
        for body, priority in [(b"low", None), (b"top", "7"), (b"mid", "1"), (b"top2", "2")]:
            fields = streams.encode_entry(body, priority=priority)
            await self.wait(streams.add(h, keys, fields))
        later = streams.encode_entry(b"later", priority="1")
        await self.wait(streams.add(h, keys, later, 2e9, "job-1"))
        due = await self.wait(h.execute_command("ZSCORE", keys.delay_due, "job-1"))
        self.assertEqual(float(due), 2e9)
        got = await self.wait(streams.read_levels(h, levels, "a", 3))
        self.assertEqual([e.body for e in got], [b"top", b"top2", b"mid"])
        self.assertEqual([e.stream for e in got], [levels[0], levels[0], levels[1]])
        got = await self.wait(streams.read_levels(h, levels, "a", 5))
        self.assertEqual([e.body for e in got], [b"early", b"low"])
        self.assertEqual(await self.wait(streams.read_levels(h, levels, "a", 5)), [])
        blocking = self.make_connection()
        await self.wait(blocking.when_connected(10))
        waiting = blocking.handler.execute_command(
            "XREADGROUP", "GROUP", GROUP, "b", "COUNT", 1, "BLOCK", 5000,
            "STREAMS", *levels, *[">"] * len(levels),
        )  # fmt: skip
        await self.sleep(0.1)
        await self.wait(streams.add(h, keys, streams.encode_entry(b"wake", priority="1")))
        [entry] = streams.parse_entries(await self.wait(waiting))
        self.assertEqual((entry.body, entry.stream), (b"wake", levels[1]))
