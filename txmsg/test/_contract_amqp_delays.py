# -*- test-case-name: txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The delayed-delivery contract (L{txmsg.amqp.delayed}): what the delay levels
do on RabbitMQ, the in-memory broker must do too: TTL levels chained by
exchange-to-exchange bindings, the deliver exchange's alternate exchange,
quorum levels dead-lettering at-least-once, and RabbitMQ's dead-letter cycle
check.  Each test uses its own prefix, so its own levels.
"""

from __future__ import annotations

from typing import Any

from txmsg.amqp import LEVELS, DelayedDelivery, Queue
from txmsg.test._contract_amqp import AMQPContract
from txmsg.test._contract_base import contract


class DelayContract(AMQPContract):
    """Delayed delivery on the broker."""

    def delays(self, conn: Any, **kw: Any) -> DelayedDelivery:
        prefix = self.unique("txmsg-test-delay")
        delays = DelayedDelivery(conn, prefix=prefix, clock=self.clock, **kw)
        for level in range(LEVELS):
            self.forget_queue(delays.level(level))
            self.forget_exchange(delays.level(level))
        self.forget_queue(delays.unroutable)
        self.forget_exchange(delays.unroutable)
        self.forget_exchange(delays.deliver_exchange)
        return delays

    async def delayed_arrivals(self, **kw: Any) -> None:
        conn = await self.connect()
        delays = self.delays(conn, **kw)
        q = await self.declare_queue(conn, self.unique("delayed"))
        got: list = []
        await self.consume(conn, q, lambda d: got.append((self.clock.seconds(), d.body)))
        etas = {}
        # ETAs a second apart: the order is certain even on a loaded broker.
        for delay in (2.2, 0.2, 1.2, 0.0):
            body = str(delay).encode()
            etas[body] = self.clock.seconds() + delay
            await self.wait(delays.publish(q.name, body, delay), 20)
        await self.eventually(lambda: len(got) == 4, timeout=10)
        self.assertEqual([b for _, b in got], [b"0.0", b"0.2", b"1.2", b"2.2"])
        for at, body in got:
            self.assertGreaterEqual(at, etas[body])
            self.assertLess(at, etas[body] + 1.0)

    @contract
    async def test_delayed_in_eta_order(self) -> None:
        """Messages with distinct delays arrive in ETA order, none early, each within 1 s."""
        await self.delayed_arrivals()

    @contract
    async def test_delayed_quorum(self) -> None:
        """The same with quorum level queues dead-lettering at-least-once."""
        await self.delayed_arrivals(queue_type="quorum")

    @contract
    async def test_dead_letter_cycle_dropped(self) -> None:
        """
        A message whose C{x-death} already names a level queue it is
        dead-lettered into again is dropped (RabbitMQ's cycle check):
        L{DelayedDelivery.publish} removes that history, so it arrives.
        """
        conn = await self.connect()
        delays = self.delays(conn)
        q = await self.declare_queue(conn, self.unique("cycle"))
        await self.wait(delays.declare(q.name), 20)
        got: list = []
        await self.consume(conn, q, lambda d: got.append(d.body))
        history = [{"queue": delays.level(0), "reason": "expired", "count": 1, "exchange": ""}]
        key = "0." * (LEVELS - 2) + "1.1." + q.name
        await self.wait(conn.publish(delays.level(1), key, b"cycle", headers={"x-death": history}))
        await self.wait(delays.publish(q.name, b"kept", 0.3, headers={"x-death": history}))
        await self.eventually(lambda: got == [b"kept"], timeout=5)
        await self.sleep(0.3)
        self.assertEqual(got, [b"kept"])

    @contract
    async def test_due_without_destination(self) -> None:
        """A message due for a queue deleted meanwhile lands in C{<prefix>.unroutable}."""
        conn = await self.connect()
        delays = self.delays(conn)
        name = self.unique("gone")
        await self.wait(conn.declare(Queue(name, durable=False)))
        await self.wait(delays.publish(name, b"orphan", 1.5), 20)
        ch = await self.wait(conn.open_channel())
        await self.wait(ch.queue_delete(name))
        got: list = []
        await self.consume(conn, delays.unroutable, lambda d: got.append(d.body))
        await self.eventually(lambda: got == [b"orphan"], timeout=10)
