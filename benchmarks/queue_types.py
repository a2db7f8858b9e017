#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Classic vs quorum queues with txmsg's own publisher and consumer, in the
same run, against the RabbitMQ at C{$TXMSG_AMQP_URL} (default: local guest;
a single node also runs quorum queues, with one member).

For each queue type, with the arguments the worker declares for
C{--queue-type} (L{txmsg.amqp.queue_types}: quorum work queues dead-letter
at-least-once, reject publishes when full, cap deliveries):

  1. confirmed publishing of N persistent 256-byte messages, up to 100
     unconfirmed;
  2. consume + manual ack of the N messages at prefetch 100.

Rounds are interleaved (classic, quorum, classic, ...), medians reported
with the ratio quorum / classic.

Usage: python benchmarks/queue_types.py [--quick] [--messages N] [--rounds R]
"""

import argparse
import os
import statistics
import sys
import uuid

import pika
from twisted.internet import defer, task

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

import amqp as amqp_bench  # noqa: E402  (benchmarks/amqp.py: txmsg's publish and consume runs)

from txmsg.amqp.queue_types import work_queue_arguments  # noqa: E402

URL = amqp_bench.URL
TYPES = ("classic", "quorum")


async def one_round(reactor, kind, n):
    queue = f"txmsg-bench-{kind}-{uuid.uuid4().hex[:8]}"
    c = pika.BlockingConnection(pika.URLParameters(URL))
    args = work_queue_arguments(kind, queue + ".dead")
    c.channel().queue_declare(queue, durable=True, arguments=args)
    try:
        publish_rate = await amqp_bench.txmsg_publish(reactor, queue, n)
        consume_rate = await amqp_bench.txmsg_consume(reactor, queue, n, 100)
    finally:
        c.channel().queue_delete(queue)
        c.close()
    return publish_rate, consume_rate


async def main(reactor, args):
    results = {k: ([], []) for k in TYPES}
    for _ in range(args.rounds):
        for kind in TYPES:
            pub, con = await one_round(reactor, kind, args.messages)
            results[kind][0].append(pub)
            results[kind][1].append(con)
    print(f"{args.messages} persistent 256-byte messages, {args.rounds} rounds, medians (msg/s)")
    print(f"{'':36}{'classic':>10}{'quorum':>10}{'quorum/classic':>16}")
    for i, what in enumerate(("publish, confirmed (100 in flight)", "consume + ack, prefetch 100")):
        c = statistics.median(results["classic"][i])
        q = statistics.median(results["quorum"][i])
        print(f"{what:36}{c:10,.0f}{q:10,.0f}{q / c:15.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,000 messages, 1 round")
    options = parser.parse_args()
    if options.quick:
        options.messages, options.rounds = 1000, 1
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, options)))
