#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""Seed S16 rpc_server.py on txmsg: answer fib(n) requests on C{rpc_queue}."""

from _amqp_example import Countdown, connect, name, out, run

from txmsg.amqp import Queue, RPCServer


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


async def main(reactor):
    conn = connect(reactor, "txmsg-example-rpc-server")
    done = Countdown()

    def on_request(delivery):
        n = int(delivery.body)
        out(" [.] fib(%s)" % n)
        reactor.callLater(0, done.tick)  # after the reply is on its way
        return str(fib(n))

    server = RPCServer(conn, Queue(name("rpc_queue"), durable=False), on_request, prefetch=1)
    await server.consumer.when_consuming()
    out(" [x] Awaiting RPC requests")
    await done.done
    await conn.stopService()  # waits for the reply's confirm and the request's ack


run(main)
