# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Seed S9 on txmsg: the flash-sale lock (抢购).

The seed (seed 002) grabbed ``key_resource_id`` with ``setnx`` then ``expire``
(immortal lock if the process dies in between), or stored an expiry time and
used ``getset`` (trusts clocks; a late holder deletes somebody else's lock),
then ``r.delete`` to release (deletes whoever's lock is there).  Here: one
atomic ``SET NX PX`` with an owner token, release/extend only by the owner,
waiting without blocking the reactor.

    python examples/redis_lock.py [--buyers N] [--namespace NS]

Redis: $TXMSG_REDIS_URL or redis://127.0.0.1:6379/0.
"""

import argparse

from twisted.internet import defer, task

from txmsg.redis import Lock, LockNotAcquired, RedisConnection


async def main(reactor, buyers: int, namespace: str) -> None:
    redis = RedisConnection(reactor=reactor)
    redis.startService()
    try:
        await redis.when_connected(timeout=10)

        async def buy(n: int) -> bool:
            lock = Lock(redis, "key_resource_id", namespace=namespace, ttl=5)
            try:
                await lock.acquire(timeout=0)  # the seed: try once
            except LockNotAcquired:
                print(f"buyer {n}: 抢购失败 (sold out)")
                return False
            print(f"buyer {n}: 抢购成功 (got it)")
            await task.deferLater(reactor, 0.2, lambda: None)  # work while holding
            await lock.release()
            return True

        results = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(buy(n)) for n in range(buyers)]
        )
        print(f"winners: {sum(results)} of {buyers}")

        # Waiting for a lock (retrying without blocking) and async with:
        order = []

        async def worker(n: int) -> None:
            async with Lock(
                redis,
                "queue",
                namespace=namespace,
                ttl=5,
                timeout=10,
                retry_interval=0.02,
            ):
                order.append(n)
                await task.deferLater(reactor, 0.05, lambda: None)

        await defer.gatherResults([defer.Deferred.fromCoroutine(worker(n)) for n in range(3)])
        print(f"serialized workers: {len(order)} ran one at a time")
    finally:
        await redis.stopService()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="distributed lock demo on txmsg")
    p.add_argument("--buyers", type=int, default=5)
    p.add_argument("--namespace", default="txmsg-example")
    a = p.parse_args()
    task.react(lambda r: defer.Deferred.fromCoroutine(main(r, a.buyers, a.namespace)))
