#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S14 emit_log.py on txmsg: broadcast on the fanout exchange C{logs}."""

import sys

from _amqp_example import connect, name, out, run

from txmsg.amqp import Exchange


async def main(reactor):
    conn = connect(reactor, "txmsg-example-emit-log")
    await conn.declare(Exchange(name("logs"), "fanout", durable=False))
    message = " ".join(sys.argv[1:]) or "info: Hello World!"
    # Not mandatory: with no subscriber bound the broadcast is simply dropped.
    await conn.publish(name("logs"), "", message, mandatory=False)
    out(" [x] Sent %r" % message)
    await conn.stopService()


run(main)
