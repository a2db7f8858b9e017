#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S15 receive_logs_direct.py on txmsg: receive the chosen severities."""

import sys

from _amqp_example import Countdown, connect, name, out, run

from txmsg.amqp import Binding, Exchange, Queue


async def main(reactor):
    severities = sys.argv[1:]
    if not severities:
        sys.stderr.write("Usage: %s [info] [warning] [error]\n" % sys.argv[0])
        raise SystemExit(1)
    conn = connect(reactor, "txmsg-example-receive-logs-direct")
    done = Countdown()
    exchange = Exchange(name("direct_logs"), "direct", durable=False)
    queue = Queue.server_named()
    await conn.declare(*[Binding(queue, exchange, s) for s in severities])

    def callback(delivery):
        out(" [x] %r:%r" % (delivery.routing_key, delivery.body))
        done.tick()

    consumer = conn.consume(queue, callback)
    await consumer.when_consuming()
    out(" [*] Waiting for logs. To exit press CTRL+C")
    await done.done
    await conn.stopService()


run(main)
