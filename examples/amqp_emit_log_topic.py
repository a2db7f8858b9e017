#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S15 emit_log_topic.py on txmsg: route by dotted key on C{topic_logs}."""

import sys

from _amqp_example import connect, name, out, run

from txmsg.amqp import Exchange


async def main(reactor):
    conn = connect(reactor, "txmsg-example-emit-log-topic")
    await conn.declare(Exchange(name("topic_logs"), "topic", durable=False))
    routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
    message = " ".join(sys.argv[2:]) or "Hello World!"
    await conn.publish(name("topic_logs"), routing_key, message, mandatory=False)
    out(" [x] Sent %r:%r" % (routing_key, message))
    await conn.stopService()


run(main)
