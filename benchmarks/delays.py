#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Delayed delivery on RabbitMQ (txmsg.amqp.delayed): accuracy and broker load,
on a private RabbitMQ node started for the run (the shared one is not
touched), classic and quorum delay levels in the same run.

  1. accuracy: messages with delays drawn log-uniformly from 0.1 s to
     --max-delay (default 20 s; the mechanism is the same for 30 days: one
     hop per set bit of the tick count, at most 25), published through
     DelayedDelivery; lateness = arrival - ETA (never negative: an early
     arrival is reported as an error).  p50 / p99 / max.
  2. load: --waiting messages (default 100,000) with delays spread over
     1 to 30 days wait in the levels; the broker's memory (erlang:memory),
     the level queues' own memory and the broker's CPU while they wait.
  3. the alternative the levels replace, one TTL queue per distinct delay:
     --ttl-queues queues (default 2,000) of one message each; the broker
     memory per queue, extrapolated to one queue per waiting message.

Usage: python benchmarks/delays.py [--quick] [--max-delay S] [--waiting N]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet import defer, task  # noqa: E402

from tests._amqp_support import PrivateBroker  # noqa: E402
from txmsg.amqp import AMQPConnection, DelayedDelivery, Queue  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def beam_stats(broker: PrivateBroker) -> tuple[int, float]:
    """The broker's memory (bytes) and CPU seconds used so far."""
    memory = int(broker.ctl("eval", "erlang:memory(total).").strip())
    pid = int(broker.ctl("eval", "list_to_integer(os:getpid()).").strip())
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return memory, (int(fields[11]) + int(fields[12])) / ticks


def level_memory(broker: PrivateBroker, prefix: str) -> tuple[int, int]:
    """Messages and memory (bytes) of the level queues of C{prefix}."""
    out = broker.ctl("list_queues", "name", "messages", "memory", "--quiet", "--no-table-headers")
    messages = memory = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(prefix + "."):
            messages += int(parts[1])
            memory += int(parts[2])
    return messages, memory


async def connect(url: str) -> AMQPConnection:
    conn = AMQPConnection(url)
    conn.startService()
    await conn.when_ready(30)
    return conn


async def accuracy(reactor, url: str, queue_type: str, n: int, max_delay: float) -> list[float]:
    conn = await connect(url)
    try:
        delays = DelayedDelivery(conn, queue_type=queue_type)
        name = "bench-delays-{}-{}".format(queue_type, os.getpid())
        await conn.declare(Queue(name, durable=True, arguments={"x-queue-type": queue_type}))
        lateness: list[float] = []
        early: list[float] = []

        def arrived(delivery) -> None:
            eta = float(delivery.properties.headers["eta"])
            late = time.time() - eta
            (lateness if late >= 0 else early).append(late)

        await delays.declare(name)
        consumer = conn.consume(name, arrived, prefetch=100)
        await consumer.when_consuming()
        rng = random.Random(1)
        pending = []
        for _ in range(n):
            delay = math.exp(rng.uniform(math.log(0.1), math.log(max_delay)))
            eta = time.time() + delay
            pending.append(delays.publish(name, b"x", eta=eta, headers={"eta": repr(eta)}))
        await defer.gatherResults(pending)
        deadline = time.time() + max_delay + 30
        while len(lateness) + len(early) < n and time.time() < deadline:
            await task.deferLater(reactor, 0.2, lambda: None)
        await consumer.stop()
        if early:
            print("  ERROR: {} arrived early (max {:.3f} s)".format(len(early), -min(early)))
        if len(lateness) + len(early) < n:
            print("  ERROR: {} never arrived".format(n - len(lateness) - len(early)))
        return lateness
    finally:
        await conn.stopService()


async def load(reactor, broker: PrivateBroker, queue_type: str, n: int) -> dict:
    conn = await connect(broker.url)
    try:
        delays = DelayedDelivery(conn, queue_type=queue_type)
        name = "bench-waiting-{}".format(queue_type)
        await conn.declare(Queue(name, durable=True, arguments={"x-queue-type": queue_type}))
        await delays.declare(name)
        await task.deferLater(reactor, 2, lambda: None)
        memory0, cpu0 = beam_stats(broker)
        rng = random.Random(2)
        body = b'{"task": "report", "args": [1, 2], "kwargs": {}, "id": "0123456789abcdef"}'
        sem = defer.DeferredSemaphore(500)
        start = time.perf_counter()
        await defer.gatherResults(
            [sem.run(delays.publish, name, body, rng.uniform(86400, 30 * 86400)) for _ in range(n)]
        )
        rate = n / (time.perf_counter() - start)
        await task.deferLater(reactor, 5, lambda: None)
        memory1, cpu1 = beam_stats(broker)
        await task.deferLater(reactor, 20, lambda: None)
        memory2, cpu2 = beam_stats(broker)
        messages, qmemory = level_memory(broker, delays.prefix)
        return {
            "rate": rate,
            "messages": messages,
            "memory": memory2 - memory0,
            "queue_memory": qmemory,
            "idle_cpu": (cpu2 - cpu1) / 20 * 100,
        }
    finally:
        await conn.stopService()


async def ttl_queues(reactor, broker: PrivateBroker, count: int) -> float:
    """Broker memory per queue for one TTL queue per distinct delay."""
    conn = await connect(broker.url)
    try:
        memory0, _ = beam_stats(broker)
        for i in range(count):
            q = Queue(
                "bench-ttl-{}".format(i),
                durable=True,
                arguments={
                    "x-message-ttl": 86400000 + i,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": "bench",
                },
            )
            await conn.declare(q)
            await conn.publish("", q.name, b"x")
        await task.deferLater(reactor, 5, lambda: None)
        memory1, _ = beam_stats(broker)
        return (memory1 - memory0) / count
    finally:
        await conn.stopService()


async def main(reactor, args) -> None:
    print("Delayed delivery on RabbitMQ (private node, {} levels)".format(25))
    broker = PrivateBroker()
    broker.start()
    try:
        print(broker.ctl("eval", "rabbit_misc:version().").strip().strip('"'), "on this node")
        print("\n1. accuracy: delays 0.1 s .. {:.0f} s, log-uniform".format(args.max_delay))
        print(
            "{:>8} {:>6} {:>10} {:>10} {:>10}".format("levels", "n", "p50 ms", "p99 ms", "max ms")
        )
        for queue_type in ("classic", "quorum"):
            late = await accuracy(reactor, broker.url, queue_type, args.n, args.max_delay)
            if late:
                print(
                    "{:>8} {:>6} {:>10.0f} {:>10.0f} {:>10.0f}".format(
                        queue_type,
                        len(late),
                        statistics.median(late) * 1000,
                        pct(late, 0.99) * 1000,
                        max(late) * 1000,
                    )
                )
        print("\n2. load: {:,} messages waiting 1..30 days".format(args.waiting))
        results = {}
        for queue_type in ("classic", "quorum"):
            r = results[queue_type] = await load(reactor, broker, queue_type, args.waiting)
            print(
                "{:>8}: published {:,.0f}/s confirmed; {:,} waiting; broker memory +{:.1f} MiB "
                "({:.0f} B/message); level queues report {:.1f} MiB; broker CPU while "
                "waiting {:.1f}%".format(
                    queue_type,
                    r["rate"],
                    r["messages"],
                    r["memory"] / 2**20,
                    r["memory"] / max(1, r["messages"]),
                    r["queue_memory"] / 2**20,
                    r["idle_cpu"],
                )
            )
        print(
            "\n3. one TTL queue per distinct delay ({:,} queues, 1 message each)".format(
                args.ttl_queues
            )
        )
        per_queue = await ttl_queues(reactor, broker, args.ttl_queues)
        print(
            "   broker memory {:.1f} KiB per queue -> {:,.0f} MiB for {:,} distinct delays "
            "(classic levels: broker memory +{:.1f} MiB, level queues report {:.1f} MiB)".format(
                per_queue / 1024,
                per_queue * args.waiting / 2**20,
                args.waiting,
                results["classic"]["memory"] / 2**20,
                results["classic"]["queue_memory"] / 2**20,
            )
        )
    finally:
        broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--n", type=int, default=500, help="messages per accuracy run")
    parser.add_argument("--max-delay", type=float, default=20.0)
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--ttl-queues", type=int, default=2000)
    args = parser.parse_args()
    if args.quick:
        args.n, args.max_delay, args.waiting, args.ttl_queues = 50, 3.0, 2000, 100
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args)))
