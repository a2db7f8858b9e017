# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The txmsg dashboard inside your own twisted.web site, at /ops/txmsg/.

    python examples/dashboard_embed.py [QUEUE] [--once]

Serves http://127.0.0.1:8090/ (your page) and http://127.0.0.1:8090/ops/txmsg/
(the dashboard, showing QUEUE, default "tasks").  With --once it fetches the
dashboard's JSON overview once, prints the queue's row and exits.
"""

import json
import sys

from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from txmsg.amqp import AMQPConnection
from txmsg.ops.dashboard import DashboardRoot, PassiveDeclareStats, QueueSampler


async def main(reactor, queue="tasks", once=False):
    amqp = AMQPConnection(reactor=reactor)  # $TXMSG_AMQP_URL or the local broker
    sampler = QueueSampler(PassiveDeclareStats(amqp), queues=[queue], interval=5, clock=reactor)
    amqp.startService()
    await amqp.when_ready(10)
    sampler.startService()

    root = Resource()
    root.putChild(b"", Data(b"<a href='/ops/txmsg/'>txmsg dashboard</a>", "text/html"))
    ops = Resource()
    ops.putChild(b"txmsg", DashboardRoot(sampler, amqp, read_only=True))
    root.putChild(b"ops", ops)
    port = reactor.listenTCP(0 if once else 8090, Site(root), interface="127.0.0.1")
    try:
        if not once:
            print("http://127.0.0.1:{}/ops/txmsg/".format(port.getHost().port))
            await Deferred()  # serve until Ctrl-C
        await sampler.sample_now()
        url = "http://127.0.0.1:{}/ops/txmsg/api/overview".format(port.getHost().port)
        response = await Agent(reactor).request(b"GET", url.encode())
        overview = json.loads(await readBody(response))
        [row] = [q for q in overview["queues"] if q["queue"] == queue]
        print(queue, "ready:", row["ready"], "consumers:", row["consumers"])
    finally:
        await port.stopListening()
        sampler.stopService()
        await amqp.stopService()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--once"]
    react(lambda reactor: main(reactor, *(args[:1] or ["tasks"]), once="--once" in sys.argv))
