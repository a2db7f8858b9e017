# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Seed S11 on txmsg: the zset delay queue.

The seed (seed 002) added ``task_id -> time.time() + delay`` to the zset
``delay-queue`` and ran ``while True: zrangebyscore(..., num=1)``, sleeping a
fixed second when empty, claiming with ``zrem`` (one round trip per item; a
handler exception killed the loop; a crash after ``zrem`` lost the task).
Here: a poller that sleeps until the next due time, claims atomically in Lua
into a processing set with a lease, retries failed tasks and never loses one.

    python examples/redis_delay_queue.py [--scale 0.2] [--namespace NS]

``--scale`` multiplies the seed's delays (5, 2, 3, 10 s).  Redis:
$TXMSG_REDIS_URL or redis://127.0.0.1:6379/0.
"""

import argparse

from twisted.internet import defer, task

from txmsg.redis import DelayQueue, RedisConnection


async def main(reactor, scale: float, namespace: str) -> None:
    redis = RedisConnection(reactor=reactor)
    redis.startService()
    try:
        await redis.when_connected(timeout=10)
        queue = DelayQueue(redis, "delay-queue", namespace=namespace)
        start = reactor.seconds()
        done = defer.Deferred()
        handled = []

        def handle_msg(item) -> None:
            """消息处理逻辑 (the seed's handle_msg)."""
            took = reactor.seconds() - start
            print(f"消息{item.payload}已经被处理完成！ (after {took:.1f} s)", flush=True)
            handled.append(item.payload)
            if len(handled) == 4:
                done.callback(None)

        poller = queue.poller(handle_msg, max_sleep=5)
        poller.startService()
        print("循环监听中... (the poller sleeps until the next due time)", flush=True)

        async def delay_task(task_name: str, delay_time: float) -> None:
            await queue.schedule(task_name, delay=delay_time * scale)

        await delay_task("任务1延迟5", 5)
        await delay_task("任务2延迟2", 2)
        await delay_task("任务3延迟3", 3)
        await delay_task("任务4延迟10", 10)
        await done.addTimeout(30 * max(scale, 0.1) + 10, reactor)
        await poller.stopService()
        print("order:", ", ".join(handled))
        print("left:", await queue.counts())
    finally:
        await redis.stopService()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="delay queue demo on txmsg")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--namespace", default="txmsg-example")
    a = p.parse_args()
    task.react(lambda r: defer.Deferred.fromCoroutine(main(r, a.scale, a.namespace)))
