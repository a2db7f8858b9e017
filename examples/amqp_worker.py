#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Seed S13 worker.py on txmsg: fair dispatch (prefetch 1), one second of
(non-blocking) work per dot, ack after the work is done.
"""

from _amqp_example import Countdown, connect, name, out, run
from twisted.internet.task import deferLater

from txmsg.amqp import Queue


async def main(reactor):
    conn = connect(reactor, "txmsg-example-worker")
    done = Countdown()

    async def callback(delivery):
        out(" [x] Received %r" % delivery.body)
        await deferLater(reactor, delivery.body.count(b"."))
        out(" [x] Done")
        done.tick()

    consumer = conn.consume(Queue(name("task_queue"), durable=True), callback, prefetch=1)
    await consumer.when_consuming()
    out(" [*] Waiting for messages. To exit press CTRL+C")
    await done.done
    await conn.stopService()  # the last ack is flushed before the connection closes


run(main)
