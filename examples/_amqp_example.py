# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Shared plumbing of the AMQP examples: the connection (URL from
C{TXMSG_AMQP_URL}), queue/exchange name overrides (C{TXMSG_EXAMPLE_NAME},
default: the seeds' names) and an optional message count after which
receivers exit (C{TXMSG_EXAMPLE_COUNT}).
"""

import os
import sys

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from txmsg.amqp import AMQPConnection


def name(default):
    """The queue/exchange name to use (the seed's by default)."""
    return os.environ.get("TXMSG_EXAMPLE_NAME", default)


def count():
    """Exit after this many messages (0: run until interrupted)."""
    return int(os.environ.get("TXMSG_EXAMPLE_COUNT", "0"))


def out(text):
    """Print a line at once (tests read it)."""
    print(text)
    sys.stdout.flush()


def connect(reactor, connection_name):
    """Start an L{AMQPConnection}; stop it with C{await conn.stopService()}."""
    conn = AMQPConnection(reactor=reactor, connection_name=connection_name)
    conn.startService()
    # Ctrl+C: stop cleanly (acks flushed, unacked deliveries requeued).
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: conn.stopService() if conn.running else None
    )
    return conn


def run(main):
    """Run C{async def main(reactor)} and exit."""
    react(lambda reactor: ensureDeferred(main(reactor)))


class Countdown:
    """A Deferred that fires after L{count} calls to L{tick} (never for 0)."""

    def __init__(self):
        from twisted.internet.defer import Deferred

        self.left = count()
        self.done = Deferred()

    def tick(self):
        self.left -= 1
        if self.left == 0:
            self.done.callback(None)
