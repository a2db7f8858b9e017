# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Seed S7 on txmsg: RQ's dequeue, ``blpop`` with a timeout vs ``lpop`` burst.

RQ (seed 000) pops job ids with ``blpop(queue_keys, timeout)`` when the worker
waits for work, and with ``lpop`` in burst mode (drain, then exit); a worker
that dies after the pop loses the job.  Here both modes move the item
atomically into the consumer's processing list (``LMOVE``/``BLMOVE``), remove
it only after the callback succeeded, and recover it if the consumer dies.
Blocking pops run on a dedicated connection so other Redis traffic never
waits behind them.

    python examples/redis_list_queue.py [--namespace NS]

Redis: $TXMSG_REDIS_URL or redis://127.0.0.1:6379/0.
"""

import argparse

from twisted.internet import defer, task

from txmsg.redis import RedisConnection, ReliableQueue


async def main(reactor, namespace: str) -> None:
    redis = RedisConnection(reactor=reactor)
    redis.startService()
    try:
        await redis.when_connected(timeout=10)
        queue = ReliableQueue(redis, "default", namespace=namespace, serializer="text")

        # burst mode (RQ's lpop): drain what is there, then stop
        await queue.push("job-1", "job-2", "job-3")
        burst = queue.consume(lambda job: print(f"burst: {job}", flush=True), mode="burst")
        n = await burst.done
        print(f"burst worker done after {n} job(s)")

        # blocking mode (RQ's blpop with a timeout), on its own connection
        got = []
        done = defer.Deferred()

        def work(job: str) -> None:
            print(f"block: {job}", flush=True)
            got.append(job)
            if len(got) == 2:
                done.callback(None)

        worker = queue.consume(work, block_timeout=1.0)
        await task.deferLater(reactor, 0.3, lambda: None)
        t0 = reactor.seconds()
        await redis.handler.ping()  # not stuck behind the blocking pop
        print(f"PING while the worker blocks: {1000 * (reactor.seconds() - t0):.1f} ms")
        await queue.push("job-4")
        await queue.push("job-5")
        await done.addTimeout(10, reactor)
        await worker.stopService()
        print("blocking worker stopped; waiting:", await queue.length())
    finally:
        await redis.stopService()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="reliable list queue demo on txmsg")
    p.add_argument("--namespace", default="txmsg-example")
    a = p.parse_args()
    task.react(lambda r: defer.Deferred.fromCoroutine(main(r, a.namespace)))
