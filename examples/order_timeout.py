# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Seed S10 on txmsg: cancel an unpaid order after N seconds, via key expiry.

The seed (002) stored the order id as a key with a TTL, enabled keyspace
notifications, and ran ``psubscribe('__keyevent@0__:expired')`` in a thread.
Here an expired-key callback runs on the reactor: when the timeout key of an
order expires and the order is still unpaid, the order is cancelled.

    python examples/order_timeout.py                  # 2 orders, pay one, timeout 2 s
    python examples/order_timeout.py --timeout 5

Note: Redis sends expiry events at most once and possibly late (it expires
keys lazily and by sampling), so real systems add a periodic sweep.
Redis: $TXMSG_REDIS_URL or redis://127.0.0.1:6379/0; txmsg enables
``notify-keyspace-events Ex`` if it is off (and warns if it may not).
"""

import argparse
import uuid

from twisted.internet import defer, task

from txmsg.redis import ExpiredKey, RedisService


class Orders:
    """
    Orders in Redis hashes C{<prefix>:order:<id>}, each with a timeout key
    C{<prefix>:order:<id>:timeout} that expires when payment is due.
    """

    def __init__(self, redis: RedisService, prefix: str, timeout: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.timeout = timeout
        self.cancelled = []
        self.changed = defer.Deferred()
        redis.on_expired(prefix + ":order:*:timeout", self.on_timeout)

    def key(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}"

    async def create(self, order_id: str) -> None:
        await self.redis.handler.hset(self.key(order_id), "status", "unpaid")
        await self.redis.handler.set(self.key(order_id) + ":timeout", "1", expire=self.timeout)
        print(
            f"order {order_id} created, pay within {self.timeout} s",
            flush=True,
        )

    async def pay(self, order_id: str) -> None:
        await self.redis.handler.delete([self.key(order_id) + ":timeout"])
        await self.redis.handler.hset(self.key(order_id), "status", "paid")
        print(f"order {order_id} paid", flush=True)

    async def on_timeout(self, expired: ExpiredKey) -> None:
        order_key = expired.key[: -len(":timeout")]
        order_id = order_key.rsplit(":", 1)[1]
        status = await self.redis.handler.hget(order_key, "status")
        if status == "unpaid":
            await self.redis.handler.hset(order_key, "status", "cancelled")
            print(f"order {order_id} not paid in time: cancelled", flush=True)
            self.cancelled.append(order_id)
            self.changed.callback(order_id)

    async def status(self, order_id: str) -> str:
        return await self.redis.handler.hget(self.key(order_id), "status")


async def main(reactor, timeout: int) -> None:
    redis = RedisService(reactor=reactor)
    prefix = "txmsg-example-" + uuid.uuid4().hex[:8]
    orders = Orders(redis, prefix, timeout)
    redis.startService()
    try:
        await redis.when_connected(timeout=10)
        await redis.expiry.ensure_notifications()
        await orders.create("1001")
        await orders.create("1002")
        await orders.pay("1001")
        await orders.changed.addTimeout(timeout + 15, reactor)
        for order_id in ("1001", "1002"):
            print(f"order {order_id}: {await orders.status(order_id)}")
        await redis.handler.delete([orders.key("1001"), orders.key("1002")])
    finally:
        await redis.stopService()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="cancel unpaid orders via Redis key expiry")
    p.add_argument("--timeout", type=int, default=2, help="seconds to pay")
    a = p.parse_args()
    task.react(lambda r: defer.Deferred.fromCoroutine(main(r, a.timeout)))
