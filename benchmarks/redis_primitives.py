# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Redis primitives: txmsg vs redis-py peers, in one run.

  - lock: acquire + release per second.
      redis-py Lock (blocking): SET NX PX + Lua compare-and-delete, the same
      algorithm as txmsg's: the fair peer;
      seed (redis-py, blocking): SETNX, EXPIRE, DEL (3 round trips, and
      unsafe: a crash between SETNX and EXPIRE leaves the lock forever, and
      DEL can free someone else's lock): shown for reference only;
      txmsg Lock, one at a time;
      txmsg Lock, 50 different locks in flight at once (what a reactor
      serving many requests does; a blocking client would need 50 threads).
  - delay queue: items claimed (and handled, acked) per second, all due.
      batch peer (redis-py, blocking): one Lua call claims up to 100 due
      items into a processing set with a lease, as txmsg does; the batch's
      acks go in one pipelined round trip: the fair peer;
      seed (redis-py, blocking): ZRANGEBYSCORE num=1 + ZREM per item (two
      round trips per item): for reference only;
      txmsg DelayPoller: Lua claims of up to 100 items into a processing set
      with a lease, no-op handler; the acks of the items handled in one
      reactor turn go in one Lua call (one Lua ack per item before
      2026-12-07).

Rounds are interleaved (every peer once per round, in the same process: the
blocking peers run in a thread while the reactor idles) and the median of
each is reported, with txmsg's ratio to each peer.

    python benchmarks/redis_primitives.py            # 5 rounds: 2 s of locks, 10k items
    python benchmarks/redis_primitives.py --quick    # 1 round: 0.5 s of locks, 2k items

Needs Redis at $TXMSG_REDIS_URL (default redis://127.0.0.1:6379/0).  Keys
live under a random prefix and are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def redis_py_lock(r, prefix: str, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """redis-py's own Lock: SET NX PX, Lua compare-and-delete on release."""
    lock = r.lock(prefix + ":rp-lock", timeout=5)
    n = 0
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        if lock.acquire(blocking=False):
            lock.release()
            n += 1
    return n / (time.perf_counter() - start)


def _fill(r, key: str, items: int) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    for i in range(0, items, 1000):
        r.zadd(
            key,
            {f"task{j}-{uuid.uuid4().hex}": now for j in range(i, min(items, i + 1000))},
        )


# KEYS[1] = due set, KEYS[2] = processing set; ARGV = now, batch, lease deadline
_CLAIM = """
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('zrem', KEYS[1], id)
  redis.call('zadd', KEYS[2], ARGV[3], id)
end
return due
"""


def batch_delay(r, prefix: str, items: int) -> float:  # type: ignore[no-untyped-def]
    """
    The fair blocking peer: claim up to 100 due items per Lua call into a
    processing set with a lease, handle them, ack the batch in one pipeline.
    """
    key, processing = prefix + ":batch-delay", prefix + ":batch-processing"
    _fill(r, key, items)
    claim = r.register_script(_CLAIM)
    handled = 0
    start = time.perf_counter()
    while True:
        now = time.time()
        batch = claim(keys=[key, processing], args=[now, 100, now + 30])
        if not batch:
            break
        pipe = r.pipeline(transaction=False)
        for item in batch:
            handled += 1  # the no-op handler
            pipe.zrem(processing, item)
        pipe.execute()
    return handled / (time.perf_counter() - start)


def seed_delay(r, prefix: str, items: int) -> float:  # type: ignore[no-untyped-def]
    key = prefix + ":seed-delay"
    _fill(r, key, items)
    handled = 0
    start = time.perf_counter()
    while True:
        task_list = r.zrangebyscore(key, 0, time.time(), start=0, num=1)
        if not task_list:
            break
        if r.zrem(key, task_list[0]):
            handled += 1
    return handled / (time.perf_counter() - start)


async def txmsg_locks(reactor, conn, prefix: str, seconds: float) -> dict:  # type: ignore[no-untyped-def]
    from twisted.internet import defer

    from txmsg.redis import Lock

    out = {}
    if True:
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
    return out


async def txmsg_delay(reactor, conn, prefix: str, items: int) -> float:  # type: ignore[no-untyped-def]
    from twisted.internet import defer

    from txmsg.redis import DelayQueue

    if True:
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
        rate = items / (reactor.seconds() - start)
        lc.stop()
        await poller.stopService()
    return rate


async def run_rounds(reactor, r, prefix: str, rounds: int, seconds: float, items: int):  # type: ignore[no-untyped-def]
    """Every peer once per round, interleaved; returns the samples per key."""
    from twisted.internet.threads import deferToThread

    from txmsg.redis import RedisConnection

    samples: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    conn = RedisConnection(reactor=reactor)
    conn.startService()
    try:
        await conn.when_connected(timeout=10)
        for i in range(rounds):
            sys.stderr.write(f"round {i + 1}/{rounds}\n")
            p = f"{prefix}:r{i}"
            add("redis_py_lock", await deferToThread(redis_py_lock, r, p, seconds))
            add("seed_lock", await deferToThread(seed_lock, r, p, seconds))
            for key, value in (await txmsg_locks(reactor, conn, p, seconds)).items():
                add(key, value)
            add("batch_delay", await deferToThread(batch_delay, r, p, items))
            add("seed_delay", await deferToThread(seed_delay, r, p, items))
            add("delay", await txmsg_delay(reactor, conn, p, items))
    finally:
        await conn.stopService()
    return samples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round: 0.5 s of locks, 2k items")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    a = p.parse_args()
    seconds, items = (0.5, 2000) if a.quick else (2.0, 10000)
    rounds = a.rounds or (1 if a.quick else 5)
    prefix = "txmsg-bench-" + uuid.uuid4().hex[:8]
    r = redis_py()
    r.ping()
    samples: dict[str, list[float]] = {}
    try:
        from twisted.internet import defer, task

        def run(reactor):  # type: ignore[no-untyped-def]
            d = defer.Deferred.fromCoroutine(run_rounds(reactor, r, prefix, rounds, seconds, items))
            return d.addCallback(samples.update)

        try:
            task.react(run)
        except SystemExit as e:
            if e.code:
                raise
    finally:
        keys = list(r.scan_iter(match=prefix + "*"))
        if keys:
            r.delete(*keys)
    results = {key: statistics.median(values) for key, values in samples.items()}
    print(f"median of {rounds} interleaved round(s), per second")
    rows = [
        ("lock acquire+release", "redis-py Lock (same algorithm)", "redis_py_lock"),
        ("", "seed setnx+expire+del (unsafe)", "seed_lock"),
        ("", "txmsg Lock, one at a time", "lock_seq"),
        ("", "txmsg Lock, 50 in flight", "lock_50"),
        ("delay-queue claims", "redis-py Lua batch claim (100)", "batch_delay"),
        ("", "seed zrangebyscore+zrem", "seed_delay"),
        ("", "txmsg DelayPoller (claim+ack)", "delay"),
    ]
    for what, who, key in rows:
        spread = "{:.0f}-{:.0f}".format(min(samples[key]), max(samples[key]))
        print(f"{what:22}{who:33}{results[key]:8.0f}  (rounds {spread})")
    ratios = [
        ("txmsg Lock one at a time / redis-py Lock", "lock_seq", "redis_py_lock"),
        ("txmsg Lock one at a time / seed", "lock_seq", "seed_lock"),
        ("txmsg Lock 50 in flight / redis-py Lock", "lock_50", "redis_py_lock"),
        ("txmsg DelayPoller / redis-py batch claim", "delay", "batch_delay"),
        ("txmsg DelayPoller / seed", "delay", "seed_delay"),
    ]
    for label, ours, peer in ratios:
        # the ratio of medians and the median of the per-round ratios
        per_round = statistics.median(
            x / y for x, y in zip(samples[ours], samples[peer], strict=True)
        )
        print(
            f"{label:44} {results[ours] / results[peer]:5.2f}x"
            f"  (median of per-round ratios {per_round:.2f}x)"
        )


if __name__ == "__main__":
    main()
