#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
AMQP throughput: txmsg vs raw pika TwistedProtocolConnection vs pika
BlockingConnection, in the same run, against the RabbitMQ at
C{$TXMSG_AMQP_URL} (default: local guest).

  1. confirmed publishing (persistent 256-byte messages, durable queue);
     the Twisted clients keep up to 100 publishes unconfirmed, the blocking
     client waits for each confirm (its API's only mode);
  2. consume + manual ack at prefetch 1, 10 and 100.

Rounds are interleaved (txmsg, raw, blocking, txmsg, ...) and the median is
reported, with ratios txmsg / raw Twisted and txmsg / Blocking.

Usage: python benchmarks/amqp.py [--quick] [--messages N] [--rounds R]
"""

import argparse
import os
import statistics
import sys
import time
import uuid

import pika
from twisted.internet import defer, task
from twisted.internet.threads import deferToThread

URL = os.environ.get("TXMSG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
BODY = b"x" * 256
WINDOW = 100


# -- raw pika Twisted -----------------------------------------------------------


async def raw_connect(reactor):
    from pika.adapters.twisted_connection import TwistedProtocolConnection
    from twisted.internet.endpoints import HostnameEndpoint, connectProtocol

    params = pika.URLParameters(URL)
    proto = TwistedProtocolConnection(params)
    await connectProtocol(HostnameEndpoint(reactor, params.host, params.port), proto)
    await proto.ready
    return proto


async def raw_publish(reactor, queue, n):
    conn = await raw_connect(reactor)
    ch = await conn.channel()
    await ch.confirm_delivery()
    sem = defer.DeferredSemaphore(WINDOW)
    props = pika.BasicProperties(delivery_mode=2)
    start = time.perf_counter()
    await defer.gatherResults(
        [sem.run(ch.basic_publish, "", queue, BODY, props, True) for _ in range(n)]
    )
    elapsed = time.perf_counter() - start
    await conn.close()
    return n / elapsed


async def raw_consume(reactor, queue, n, prefetch):
    conn = await raw_connect(reactor)
    ch = await conn.channel()
    await ch.basic_qos(prefetch_count=prefetch)
    q, tag = await ch.basic_consume(queue, auto_ack=False)
    start = time.perf_counter()
    for _ in range(n):
        msg = await q.get()
        msg.channel.basic_ack(msg.method.delivery_tag)
    elapsed = time.perf_counter() - start
    await conn.close()  # flushes the last acks
    return n / elapsed


# -- txmsg -----------------------------------------------------------------------


async def txmsg_publish(reactor, queue, n):
    from txmsg.amqp import AMQPConnection

    conn = AMQPConnection(URL, reactor=reactor, connection_name="txmsg-bench-pub")
    conn.startService()
    pub = conn.publisher()
    await conn.when_ready(10)
    start = time.perf_counter()
    await defer.gatherResults([pub.publish("", queue, BODY) for _ in range(n)])
    elapsed = time.perf_counter() - start
    await conn.stopService()
    return n / elapsed


async def txmsg_consume(reactor, queue, n, prefetch):
    from txmsg.amqp import AMQPConnection

    conn = AMQPConnection(URL, reactor=reactor, connection_name="txmsg-bench-con")
    conn.startService()
    done = defer.Deferred()
    count = [0]

    def handler(delivery):
        count[0] += 1
        if count[0] == n:
            done.callback(time.perf_counter())

    consumer = conn.consume(queue, handler, prefetch=prefetch)
    await consumer.when_consuming()
    start = time.perf_counter()
    end = await done
    await conn.stopService()
    return n / (end - start)


# -- BlockingConnection (run in a thread; the reactor idles meanwhile) -----------


def blocking_publish(queue, n):
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2)
    start = time.perf_counter()
    for _ in range(n):
        ch.basic_publish("", queue, BODY, props, mandatory=True)  # waits for the confirm
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def blocking_consume(queue, n, prefetch):
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    count = [0]

    def cb(ch, method, props, body):
        ch.basic_ack(method.delivery_tag)
        count[0] += 1
        if count[0] == n:
            ch.stop_consuming()

    ch.basic_consume(queue, cb)
    start = time.perf_counter()
    ch.start_consuming()
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


# -- driver ----------------------------------------------------------------------


async def fill(reactor, queue, n):
    """Put n messages into the queue (raw Twisted, confirmed)."""
    await raw_publish(reactor, queue, n)


async def with_queue(reactor, fn):
    conn = await raw_connect(reactor)
    ch = await conn.channel()
    queue = "txmsg-bench-" + uuid.uuid4().hex[:8]
    await ch.queue_declare(queue, durable=True)
    try:
        return await fn(queue)
    finally:
        await ch.queue_delete(queue)
        await conn.close()


async def main(reactor, args):
    n = args.messages
    pub = {"txmsg": [], "raw": [], "blocking": []}
    cons = {p: {"txmsg": [], "raw": [], "blocking": []} for p in (1, 10, 100)}
    n_blocking_pub = max(200, n // 5)  # ~1.6k msgs/s: keep the run short
    for r in range(args.rounds):
        sys.stderr.write(f"round {r + 1}/{args.rounds}\n")
        pub["txmsg"].append(await with_queue(reactor, lambda q: txmsg_publish(reactor, q, n)))
        pub["raw"].append(await with_queue(reactor, lambda q: raw_publish(reactor, q, n)))
        pub["blocking"].append(
            await with_queue(reactor, lambda q: deferToThread(blocking_publish, q, n_blocking_pub))
        )
        for p in (1, 10, 100):
            m = n if p > 1 else max(500, n // 2)

            async def run(q, kind, p=p, m=m):
                await fill(reactor, q, m)
                if kind == "txmsg":
                    return await txmsg_consume(reactor, q, m, p)
                if kind == "raw":
                    return await raw_consume(reactor, q, m, p)
                return await deferToThread(blocking_consume, q, m, p)

            for kind in ("txmsg", "raw", "blocking"):
                cons[p][kind].append(await with_queue(reactor, lambda q, k=kind: run(q, k)))

    def row(label, d):
        t, raw, b = (statistics.median(d[k]) for k in ("txmsg", "raw", "blocking"))
        print(f"{label:<28} {t:>9.0f} {raw:>9.0f} {b:>9.0f} {t / raw:>8.2f} {t / b:>8.2f}")

    print()
    print(
        "AMQP benchmark: {} msgs x {} rounds (median msgs/s), {}".format(
            n, args.rounds, "quick" if args.quick else "full"
        )
    )
    print(
        "{:<28} {:>9} {:>9} {:>9} {:>8} {:>8}".format(
            "workload", "txmsg", "pika-Tx", "Blocking", "tx/raw", "tx/blk"
        )
    )
    row("publish, confirmed (w=100)", pub)
    for p in (1, 10, 100):
        row(f"consume+ack prefetch {p}", cons[p])
    print(
        "(Blocking publish waits for each confirm, its API's only mode; "
        "aio-pika: not installed, not measured)"
    )


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few-second smoke run")
    ap.add_argument("--messages", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    if args.messages is None:
        args.messages = 1000 if args.quick else 3000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ARGS = parse()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, ARGS)))
