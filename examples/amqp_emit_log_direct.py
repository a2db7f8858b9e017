#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S15 emit_log_direct.py on txmsg: route by severity on C{direct_logs}."""

import sys

from _amqp_example import connect, name, out, run

from txmsg.amqp import Exchange


async def main(reactor):
    conn = connect(reactor, "txmsg-example-emit-log-direct")
    await conn.declare(Exchange(name("direct_logs"), "direct", durable=False))
    severity = sys.argv[1] if len(sys.argv) > 1 else "info"
    message = " ".join(sys.argv[2:]) or "Hello World!"
    await conn.publish(name("direct_logs"), severity, message, mandatory=False)
    out(" [x] Sent %r:%r" % (severity, message))
    await conn.stopService()


run(main)
