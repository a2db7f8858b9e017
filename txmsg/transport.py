# -*- test-case-name: txmsg.test.test_writethrough -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The old name of L{txmsg.net.transport}, kept for one release: import from
C{txmsg.net.transport} instead.
"""

from txmsg.net.transport import (
    WriteThroughClient,
    WriteThroughConnector,
    WriteThroughPort,
    WriteThroughReactor,
    WriteThroughServer,
    client_reactor,
    server_endpoint,
    write_through_applies,
)

__all__ = [
    "WriteThroughClient",
    "WriteThroughConnector",
    "WriteThroughPort",
    "WriteThroughReactor",
    "WriteThroughServer",
    "client_reactor",
    "server_endpoint",
    "write_through_applies",
]
