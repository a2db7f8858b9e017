#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S16 rpc_client.py on txmsg: call fib(n) with reply_to + correlation_id."""

import sys

from _amqp_example import connect, name, out, run

from txmsg.amqp import RPCClient


async def main(reactor):
    conn = connect(reactor, "txmsg-example-rpc-client")
    client = RPCClient(conn)  # direct reply-to (amq.rabbitmq.reply-to)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    out(" [x] Requesting fib(%d)" % n)
    response = await client.call(name("rpc_queue"), str(n), timeout=60)
    out(" [.] Got %r" % int(response))
    await conn.stopService()


run(main)
