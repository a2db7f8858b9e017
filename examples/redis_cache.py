# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Seed S8 on txmsg: the ``get_user`` read-through cache.

The seed (seed 002) did::

    def get_user(user_id):
        user = r.get(user_id)
        if not user:
            user = UserInfo.objects.get(pk=user_id)
            r.setex(user_id, 3600, user)
        return user

with a blocking client, a pickle serializer (seed 000) and a stampede: N
concurrent misses run N database queries.  Here the cache is JSON (pickle only
when named), non-blocking, and concurrent misses run the query once.

    python examples/redis_cache.py [--namespace NS] [--ttl SECONDS]

Redis: $TXMSG_REDIS_URL or redis://127.0.0.1:6379/0.
"""

import argparse

from twisted.internet import defer, task

from txmsg.redis import Cache, RedisConnection


class UserInfoTable:
    """
    A slow stand-in for the seed's ``UserInfo.objects`` (a database).
    """

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.queries = 0

    def get(self, pk: int) -> defer.Deferred:
        self.queries += 1
        return task.deferLater(self.reactor, 0.2, lambda: {"id": pk, "name": f"user{pk}"})


async def main(reactor, namespace: str, ttl: float) -> None:
    redis = RedisConnection(reactor=reactor)
    redis.startService()
    try:
        await redis.when_connected(timeout=10)
        cache = Cache(redis, namespace=namespace)
        users = UserInfoTable(reactor)

        def get_user(user_id: int) -> defer.Deferred:
            return cache.get_or_compute(f"user:{user_id}", lambda: users.get(user_id), ttl=ttl)

        await cache.delete("user:1")
        first = await defer.gatherResults([get_user(1) for _ in range(10)])
        print(f"10 concurrent get_user(1): {first[0]} ({users.queries} database query)")
        again = await get_user(1)
        print(f"get_user(1) again: {again} (cached; {users.queries} query in total)")
        print("raw entry:", await redis.handler.get(cache.key("user:1")))
    finally:
        await redis.stopService()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="get_user read-through cache on txmsg")
    p.add_argument("--namespace", default="txmsg-example")
    p.add_argument("--ttl", type=float, default=3600)
    a = p.parse_args()
    task.react(lambda r: defer.Deferred.fromCoroutine(main(r, a.namespace, a.ttl)))
