#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
AMQP throughput: txmsg vs raw pika TwistedProtocolConnection vs aio-pika vs
pika BlockingConnection, in the same run, against the RabbitMQ at
C{$TXMSG_AMQP_URL} (default: local guest).

  1. confirmed publishing (persistent 256-byte messages, durable queue):
     txmsg, raw pika-Twisted and aio-pika keep a window of up to 100
     publishes awaiting their confirms; BlockingConnection waits for each
     confirm before the next publish (a window of 1, its API's only mode),
     so "tx/blk" compares a 100-deep window with one at a time, not two
     clients doing the same thing: aio-pika is the like-for-like peer;
  2. consume + manual ack at prefetch 1, 10 and 100.

Rounds are interleaved (txmsg, raw, aio-pika, blocking, txmsg, ...) and the
median is reported, with ratios of txmsg to each peer.  aio-pika (in
requirements-bench.txt) runs on its own asyncio loop in a thread while the
reactor idles, like BlockingConnection; without it its column says so.

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


# -- aio-pika (its own asyncio loop, in a thread; the reactor idles meanwhile) ---


def _have_aio_pika():
    try:
        import aio_pika  # noqa: F401
    except ImportError:
        return False
    return True


def aio_publish(queue, n):
    """aio-pika, publisher confirms on, up to WINDOW publishes in flight."""
    import asyncio

    import aio_pika

    async def body():
        conn = await aio_pika.connect(URL)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            sem = asyncio.Semaphore(WINDOW)
            exchange = ch.default_exchange

            async def one():
                async with sem:
                    message = aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                    await exchange.publish(message, routing_key=queue, mandatory=True)

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(n)))
            return n / (time.perf_counter() - start)

    return asyncio.run(body())


def aio_consume(queue, n, prefetch):
    """aio-pika: a consumer callback that acks each message."""
    import asyncio

    import aio_pika

    async def body():
        conn = await aio_pika.connect(URL)
        async with conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=prefetch)
            q = await ch.get_queue(queue, ensure=False)
            done = asyncio.get_running_loop().create_future()
            count = [0]

            async def cb(message):
                await message.ack()
                count[0] += 1
                if count[0] == n and not done.done():
                    done.set_result(time.perf_counter())

            start = time.perf_counter()
            await q.consume(cb)
            end = await done
            return n / (end - start)

    return asyncio.run(body())


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
    aio = _have_aio_pika()
    kinds = ("txmsg", "raw", "aio-pika", "blocking") if aio else ("txmsg", "raw", "blocking")
    pub = {k: [] for k in kinds}
    cons = {p: {k: [] for k in kinds} for p in (1, 10, 100)}
    n_blocking_pub = max(200, n // 5)  # ~1.6k msgs/s: keep the run short
    for r in range(args.rounds):
        sys.stderr.write(f"round {r + 1}/{args.rounds}\n")
        pub["txmsg"].append(await with_queue(reactor, lambda q: txmsg_publish(reactor, q, n)))
        pub["raw"].append(await with_queue(reactor, lambda q: raw_publish(reactor, q, n)))
        if aio:
            pub["aio-pika"].append(
                await with_queue(reactor, lambda q: deferToThread(aio_publish, q, n))
            )
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
                if kind == "aio-pika":
                    return await deferToThread(aio_consume, q, m, p)
                return await deferToThread(blocking_consume, q, m, p)

            for kind in kinds:
                cons[p][kind].append(await with_queue(reactor, lambda q, k=kind: run(q, k)))

    def row(label, d):
        med = {k: statistics.median(v) for k, v in d.items()}
        t = med["txmsg"]
        a = med.get("aio-pika")
        cells = [f"{med[k]:>9.0f}" for k in ("txmsg", "raw")]
        cells.append(f"{a:>9.0f}" if a else f"{'-':>9}")
        cells.append(f"{med['blocking']:>9.0f}")
        cells.append(f"{t / med['raw']:>8.2f}")
        cells.append(f"{t / a:>8.2f}" if a else f"{'-':>8}")
        cells.append(f"{t / med['blocking']:>8.2f}")
        print(f"{label:<32} " + " ".join(cells))

    print()
    print(
        "AMQP benchmark: {} msgs x {} interleaved rounds (median msgs/s), {}".format(
            n, args.rounds, "quick" if args.quick else "full"
        )
    )
    print(
        "{:<32} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}".format(
            "workload", "txmsg", "pika-Tx", "aio-pika", "Blocking", "tx/raw", "tx/aio", "tx/blk"
        )
    )
    row("publish confirmed, window 100*", pub)
    for p in (1, 10, 100):
        row(f"consume+ack prefetch {p}", cons[p])
    print(
        "* txmsg, pika-Tx and aio-pika keep up to 100 publishes awaiting confirms; "
        "Blocking waits\n  for each confirm (window 1, its API's only mode): tx/blk is "
        "a 100-deep window vs one at a time."
    )
    if not aio:
        print("aio-pika: not installed (pip install -r requirements-bench.txt), not measured")


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
