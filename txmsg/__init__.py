# -*- test-case-name: txmsg.test.test_echo_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
txmsg: Twisted-native networking and messaging.

Echo services, an event-handler registry, Redis pub/sub and RabbitMQ work
queues, all on one reactor, all runnable as C{twistd} plugins and embeddable in
your own Twisted application.  This module only names the version; import the
parts you need from their own modules (L{txmsg.echo}, ...).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
