# Copyright (c) txmsg contributors. See LICENSE for details.
"""
twistd plugins for txmsg: declarations only.

Nothing from txmsg, pika or txredisapi is imported here; twistd imports the
named tap module only when its subcommand is used.  This directory must stay
without an C{__init__.py}.
"""

from twisted.application.service import ServiceMaker

txmsg_echo = ServiceMaker(
    "txmsg echo server",
    "txmsg.tap.echo_plugin",
    "Echo TCP/UNIX/TLS streams (and optionally UDP) with connection limits and backpressure.",
    "txmsg-echo",
)

txmsg_worker = ServiceMaker(
    "txmsg task worker",
    "txmsg.tap.worker",
    "Run tasks from RabbitMQ queues: acks after success, retries, dead letters, clean drain.",
    "txmsg-worker",
)

txmsg_scheduler = ServiceMaker(
    "txmsg scheduler",
    "txmsg.tap.scheduler",
    "Send periodic tasks (cron or interval), each tick once across all schedulers.",
    "txmsg-scheduler",
)

txmsg_dashboard = ServiceMaker(
    "txmsg dashboard",
    "txmsg.tap.dashboard",
    "Web dashboard: queues, workers and dead letters (requeue, purge), with /metrics.",
    "txmsg-dashboard",
)

from twisted.application.reactors import Reactor  # noqa: E402

txmsg_epoll = Reactor(
    "txmsg-epoll",
    "txmsg.net.epollreactor",
    "epoll reactor without the per-event legacy log context (txmsg; Linux)",
)
