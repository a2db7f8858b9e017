#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S13 new_task.py on txmsg: a persistent task on the durable C{task_queue}."""

import sys

from _amqp_example import connect, name, out, run

from txmsg.amqp import Queue


async def main(reactor):
    conn = connect(reactor, "txmsg-example-new-task")
    await conn.declare(Queue(name("task_queue"), durable=True))
    message = " ".join(sys.argv[1:]) or "Hello World!"
    await conn.publish("", name("task_queue"), message)  # delivery_mode=2 by default
    out(" [x] Sent %r" % message)
    await conn.stopService()


run(main)
