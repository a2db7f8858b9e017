# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Redis primitives: txmsg vs the seed-style redis-py code, in one run.

  - lock: acquire + release per second.
      seed (redis-py, blocking): SETNX, EXPIRE, DEL (seed 002 scheme 1; 3
      round trips, unsafe);
      txmsg Lock, one at a time: SET NX PX + Lua compare-and-delete;
      txmsg Lock, 50 different locks in flight at once (what a reactor
      serving many requests does).
  - delay queue: items claimed (and handled, acked) per second, all due.
      seed (redis-py, blocking): ZRANGEBYSCORE num=1 + ZREM per item
      (seed 002 loop, without its sleep since items are due);
      txmsg DelayPoller: Lua claims of up to 100 items into a processing set
      with a lease, one Lua ack per item, no-op handler.

    python benchmarks/redis_primitives.py            # 5 s of locks, 20k items
    python benchmarks/redis_primitives.py --quick    # 1 s of locks, 2k items

Needs Redis at $TXMSG_REDIS_URL (default redis://127.0.0.1:6379/0).  Keys
live under a random prefix and are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def redis_py():  # type: ignore[no-untyped-def]
    import redis

    from txmsg.redis.url import parse_redis_url

    u = parse_redis_url()
    return redis.Redis(host=u.host, port=u.port, db=u.db, username=u.username, password=u.password)


def seed_lock(r, prefix: str, seconds: float) -> float:  # type: ignore[no-untyped-def]
    key = prefix + ":seed-lock"
    n = 0
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        if r.setnx(key, "ok"):
            r.expire(key, 5)
            r.delete(key)
            n += 1
    return n / (time.perf_counter() - start)


def seed_delay(r, prefix: str, items: int) -> float:  # type: ignore[no-untyped-def]
    key = prefix + ":seed-delay"
    now = time.time()
    for i in range(0, items, 1000):
        r.zadd(
            key,
            {f"task{j}-{uuid.uuid4().hex}": now for j in range(i, min(items, i + 1000))},
        )
    handled = 0
    start = time.perf_counter()
    while True:
        task_list = r.zrangebyscore(key, 0, time.time(), start=0, num=1)
        if not task_list:
            break
        if r.zrem(key, task_list[0]):
            handled += 1
    return handled / (time.perf_counter() - start)


async def txmsg_run(reactor, prefix: str, seconds: float, items: int) -> dict:  # type: ignore[no-untyped-def]
    from twisted.internet import defer

    from txmsg.redis import DelayQueue, Lock, RedisConnection

    conn = RedisConnection(reactor=reactor)
    conn.startService()
    out = {}
    try:
        await conn.when_connected(timeout=10)
        lock = Lock(conn, "one", namespace=prefix, ttl=5)
        n = 0
        start = reactor.seconds()
        while reactor.seconds() - start < seconds:
            await lock.acquire(timeout=0)
            await lock.release()
            n += 1
        out["lock_seq"] = n / (reactor.seconds() - start)

        counter = [0]

        async def loop(i: int, end: float) -> None:
            lk = Lock(conn, f"many{i}", namespace=prefix, ttl=5)
            while reactor.seconds() < end:
                await lk.acquire(timeout=0)
                await lk.release()
                counter[0] += 1

        start = reactor.seconds()
        await defer.gatherResults(
            [defer.Deferred.fromCoroutine(loop(i, start + seconds)) for i in range(50)]
        )
        out["lock_50"] = counter[0] / (reactor.seconds() - start)

        queue = DelayQueue(conn, "delay", namespace=prefix)
        sem = defer.DeferredSemaphore(500)
        now = reactor.seconds()
        await defer.gatherResults([sem.run(queue.schedule, i, at=now) for i in range(items)])
        done = defer.Deferred()
        handled = [0]

        def handle(item) -> None:  # type: ignore[no-untyped-def]
            handled[0] += 1

        poller = queue.poller(handle, batch=100, concurrency=200, max_sleep=0.5)
        start = reactor.seconds()
        poller.startService()

        def check() -> None:
            if poller.handled >= items and not done.called:
                done.callback(None)

        from twisted.internet.task import LoopingCall

        lc = LoopingCall(check)
        lc.clock = reactor
        lc.start(0.01)
        await done
        out["delay"] = items / (reactor.seconds() - start)
        lc.stop()
        await poller.stopService()
    finally:
        await conn.stopService()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 s of locks, 2k items")
    a = p.parse_args()
    seconds, items = (1.0, 2000) if a.quick else (5.0, 20000)
    prefix = "txmsg-bench-" + uuid.uuid4().hex[:8]
    r = redis_py()
    r.ping()
    results: dict = {}
    try:
        results["seed_lock"] = seed_lock(r, prefix, seconds)
        results["seed_delay"] = seed_delay(r, prefix, items)

        from twisted.internet import defer, task

        def run(reactor):  # type: ignore[no-untyped-def]
            d = defer.Deferred.fromCoroutine(txmsg_run(reactor, prefix, seconds, items))
            return d.addCallback(results.update)

        try:
            task.react(run)
        except SystemExit as e:
            if e.code:
                raise
    finally:
        keys = list(r.scan_iter(match=prefix + "*"))
        if keys:
            r.delete(*keys)
    rows = [
        ("lock acquire+release/s", "seed redis-py setnx+expire+del", "seed_lock", None),
        ("", "txmsg Lock, one at a time", "lock_seq", "seed_lock"),
        ("", "txmsg Lock, 50 in flight", "lock_50", "seed_lock"),
        (
            "delay-queue claims/s",
            "seed redis-py zrangebyscore+zrem",
            "seed_delay",
            None,
        ),
        ("", "txmsg DelayPoller (claim+ack)", "delay", "seed_delay"),
    ]
    for what, who, key, base in rows:
        line = f"{what:24}{who:34}{results[key]:8.0f}"
        if base is not None:
            line += f"   ratio {results[key] / results[base]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
