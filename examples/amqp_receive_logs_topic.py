#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S15 receive_logs_topic.py on txmsg: binding keys with C{*} and C{#}."""

import sys

from _amqp_example import Countdown, connect, name, out, run

from txmsg.amqp import Binding, Exchange, Queue


async def main(reactor):
    binding_keys = sys.argv[1:]
    if not binding_keys:
        sys.stderr.write("Usage: %s [binding_key]...\n" % sys.argv[0])
        raise SystemExit(1)
    conn = connect(reactor, "txmsg-example-receive-logs-topic")
    done = Countdown()
    exchange = Exchange(name("topic_logs"), "topic", durable=False)
    queue = Queue.server_named()
    await conn.declare(*[Binding(queue, exchange, s) for s in binding_keys])

    def callback(delivery):
        out(" [x] %r:%r" % (delivery.routing_key, delivery.body))
        done.tick()

    consumer = conn.consume(queue, callback)
    await consumer.when_consuming()
    out(" [*] Waiting for logs. To exit press CTRL+C")
    await done.done
    await conn.stopService()


run(main)
