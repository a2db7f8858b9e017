# Copyright (c) txmsg contributors. See LICENSE for details.
"""
txmsg embedded in your own Twisted application: one reactor, one service
tree, several txmsg services sharing one event registry and one Redis
connection.

    twistd -ny examples/app.tac            # from the repository root

It runs an echo server (TCP port $TXMSG_APP_ECHO_PORT, default 8007), a
Redis subscription whose messages become events, a task worker on queue
$TXMSG_APP_QUEUE (default app_tasks) running examples/example_tasks.py, and a
health endpoint on $TXMSG_APP_HEALTH_PORT (default 8081).  Every part is an
ordinary IService: take the ones you need into your own MultiService.

The services share the Redis connection, so the top of the tree is an
OrderedMultiService: on SIGTERM the worker drains (finishes its tasks, leaves
the worker registry) before the Redis connection it uses goes down.
"""

import os
import sys

from twisted.application import service, strports
from twisted.logger import Logger

sys.path.insert(0, os.getcwd())  # find examples.example_tasks from the repo root

from txmsg.echo import EchoServerFactory  # noqa: E402
from txmsg.events import EventRegistry  # noqa: E402
from txmsg.ops.service import worker_health  # noqa: E402
from txmsg.ordered import OrderedMultiService  # noqa: E402
from txmsg.redis import RedisService  # noqa: E402
from txmsg.worker.service import WorkerService  # noqa: E402
from txmsg.worker.tasks import load_tasks  # noqa: E402

log = Logger(namespace="app")
echo_port = int(os.environ.get("TXMSG_APP_ECHO_PORT", "8007"))
health_port = int(os.environ.get("TXMSG_APP_HEALTH_PORT", "8081"))
queue = os.environ.get("TXMSG_APP_QUEUE", "app_tasks")

application = service.Application("txmsg example app")
top = OrderedMultiService()
top.setServiceParent(application)

# One registry: echo connection events, Redis messages and tasks all land here.
registry = EventRegistry()


@registry.on("echo.connected")
def connected(event):
    log.info("echo client connected from {peer}", peer=event.payload["peer"])


@registry.on("news.received")
def news(event):
    log.info("news: {text}", text=event.payload.data)


# The echo server, with its limits, on loopback.
echo_factory = EchoServerFactory(max_connections=100, idle_timeout=60, events=registry)
strports.service(
    "tcp:{}:interface=127.0.0.1".format(echo_port), echo_factory
).setServiceParent(top)

# Redis ($TXMSG_REDIS_URL or redis://127.0.0.1:6379/0): a subscription whose
# messages become "news.received" events; the worker's control channel uses
# the same connection.
redis = RedisService(events=registry)
redis.setServiceParent(top)
redis.subscribe("app.news", event="news.received", decode="text")

# The task worker ($TXMSG_AMQP_URL or amqp://guest:guest@127.0.0.1:5672/%2F).
worker = WorkerService(
    load_tasks("examples.example_tasks"),
    queues=[queue],
    name="app-worker",
    redis=redis,
    events=registry,
)
worker.setServiceParent(top)
top.uses(worker, redis)  # stop the worker first, then the Redis it shares
worker_health(worker, "tcp:{}:interface=127.0.0.1".format(health_port)).setServiceParent(top)
