# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Child processes for the Redis primitives' integration tests:

    python -m tests._primitives_child lock-hold NS TTL          # hold until killed
    python -m tests._primitives_child delay-poll NS NAME OUTFILE
    python -m tests._primitives_child list-hold NS NAME ID HBTTL  # take one item, hang
    python -m tests._primitives_child cache-compute NS KEY COUNTER
"""

from __future__ import annotations

import json
import sys

from twisted.internet import defer, task

from txmsg.redis import Cache, DelayQueue, Lock, RedisConnection, ReliableQueue


async def lock_hold(reactor, conn, ns: str, ttl: str) -> None:
    lock = Lock(conn, "victim", namespace=ns, ttl=float(ttl), auto_extend=True)
    await lock.acquire(timeout=5)
    print("acquired", flush=True)
    await defer.Deferred()  # until SIGKILL


async def delay_poll(reactor, conn, ns: str, name: str, outfile: str) -> None:
    queue = DelayQueue(conn, name, namespace=ns)
    handled: list[str] = []
    failed_once: set[str] = set()

    def handle(item) -> None:
        # one item in 50 fails on its first attempt: exercises retry
        if item.attempts == 1 and int(item.payload) % 50 == 0:
            failed_once.add(item.id)
            raise RuntimeError("transient")
        handled.append(item.payload)

    poller = queue.poller(handle, max_sleep=0.5, batch=50, concurrency=50, backoff=lambda n: 0.2)
    poller.startService()
    print("polling", flush=True)
    idle = 0
    while idle < 6:
        await task.deferLater(reactor, 0.25, lambda: None)
        counts = await queue.counts()
        idle = idle + 1 if counts["due"] == 0 and counts["processing"] == 0 else 0
    await poller.stopService()
    with open(outfile, "w") as f:
        json.dump({"handled": handled, "retried": len(failed_once)}, f)


async def list_hold(reactor, conn, ns: str, name: str, cid: str, hb: str) -> None:
    queue = ReliableQueue(conn, name, namespace=ns)

    def hang(payload) -> defer.Deferred:
        print("took", payload, flush=True)
        return defer.Deferred()  # never finishes: killed mid-handling

    queue.consume(hang, consumer_id=cid, heartbeat_ttl=float(hb), block_timeout=0.5)
    await defer.Deferred()


async def cache_compute(reactor, conn, ns: str, key: str, counter: str) -> None:
    cache = Cache(conn, namespace=ns, lock_retry=0.02)

    async def compute() -> dict:
        await conn.handler.incr(counter)
        await task.deferLater(reactor, 0.5, lambda: None)
        return {"computed": True}

    values = await defer.gatherResults(
        [cache.get_or_compute(key, compute, ttl=30) for _ in range(5)]
    )
    print(json.dumps(values), flush=True)


MODES = {
    "lock-hold": lock_hold,
    "delay-poll": delay_poll,
    "list-hold": list_hold,
    "cache-compute": cache_compute,
}


async def main(reactor, mode: str, args: list[str]) -> None:
    conn = RedisConnection(reactor=reactor)
    conn.startService()
    try:
        await conn.when_connected(timeout=10)
        await MODES[mode](reactor, conn, *args)
    finally:
        await conn.stopService()


if __name__ == "__main__":
    task.react(lambda r: defer.Deferred.fromCoroutine(main(r, sys.argv[1], sys.argv[2:])))
