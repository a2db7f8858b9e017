#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S12 receive.py on txmsg: print what arrives on queue C{hello}."""

from _amqp_example import Countdown, connect, name, out, run

from txmsg.amqp import Queue


async def main(reactor):
    conn = connect(reactor, "txmsg-example-receive")
    done = Countdown()

    def callback(delivery):
        out(" [x] Received %r" % delivery.body)
        done.tick()

    consumer = conn.consume(Queue(name("hello"), durable=False), callback)
    await consumer.when_consuming()
    out(" [*] Waiting for messages. To exit press CTRL+C")
    await done.done
    await conn.stopService()


run(main)
