#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S12 send.py on txmsg: publish one confirmed message to queue C{hello}."""

from _amqp_example import connect, name, out, run

from txmsg.amqp import Queue


async def main(reactor):
    conn = connect(reactor, "txmsg-example-send")
    await conn.declare(Queue(name("hello"), durable=False))
    await conn.publish("", name("hello"), b"Hello World!")  # fires on the broker's confirm
    out(" [x] Sent 'Hello World!'")
    await conn.stopService()


run(main)
