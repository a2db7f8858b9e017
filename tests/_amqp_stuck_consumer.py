# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A txmsg consumer whose handler never finishes (used by the SIGKILL fault
test): it prints "got <body>" for each delivery and never acks.
Usage: python tests/_amqp_stuck_consumer.py QUEUE PREFETCH
"""

import sys

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react

from txmsg.amqp import AMQPConnection


async def main(reactor, queue, prefetch):
    conn = AMQPConnection(reactor=reactor, connection_name="txmsg-stuck-" + queue)
    conn.startService()

    def handler(delivery):
        print("got", delivery.body.decode())
        sys.stdout.flush()
        return Deferred()  # never fires: mid-handler forever

    consumer = conn.consume(queue, handler, prefetch=prefetch)
    await consumer.when_consuming()
    print("consuming")
    sys.stdout.flush()
    await Deferred()


react(lambda r: ensureDeferred(main(r, sys.argv[1], int(sys.argv[2]))))
