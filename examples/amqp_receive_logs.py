#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Seed S14 receive_logs.py on txmsg: an exclusive server-named queue bound to
the fanout exchange C{logs} (re-created, with a new name, after reconnects).
"""

from _amqp_example import Countdown, connect, name, out, run

from txmsg.amqp import Binding, Exchange, Queue


async def main(reactor):
    conn = connect(reactor, "txmsg-example-receive-logs")
    done = Countdown()
    queue = Queue.server_named()
    await conn.declare(Binding(queue, Exchange(name("logs"), "fanout", durable=False)))

    def callback(delivery):
        out(" [x] %r" % delivery.body)
        done.tick()

    consumer = conn.consume(queue, callback)
    await consumer.when_consuming()
    out(" [*] Waiting for logs. To exit press CTRL+C")
    await done.done
    await conn.stopService()


run(main)
