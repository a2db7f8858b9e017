# -*- test-case-name: txmsg.test.test_redis_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
txredisapi factories that report connection-state changes.

This module imports txredisapi (which binds the global reactor at import
time), so txmsg's services only import it from C{startService}.
"""

from __future__ import annotations

from typing import Any

import txredisapi

from txmsg._tls import REDIS_HINTS, describe_tls_failure
from txmsg.redis._state import ConnectionState

__all__ = ["CommandFactory", "CommandProtocol", "ObservedFactoryMixin", "TLSFailureMixin"]


class ObservedFactoryMixin:
    """
    Tell a L{ConnectionState} when the pool gains its first usable connection
    and when it loses its last one.
    """

    state: ConnectionState | None = None
    size: int

    def addConnection(self, conn: Any) -> None:
        before = self.size
        super().addConnection(conn)  # type: ignore[misc]
        if self.state is not None and before == 0 and self.size > 0:
            self.state.connected(self.size)

    def delConnection(self, conn: Any) -> None:
        before = self.size
        super().delConnection(conn)  # type: ignore[misc]
        if self.state is not None and before > 0 and self.size == 0:
            self.state.lost()

    def connectionError(self, why: str) -> None:
        """
        txredisapi could not set up a connection (AUTH or SELECT failed, or
        the connection was lost first) and stopped reconnecting: tell the
        L{ConnectionState} (unless it already knows the real cause, such as a
        TLS failure), instead of failing C{self.deferred}, which nobody waits
        on and which would be logged as "Unhandled error in Deferred".
        """
        self.deferred = None
        if self.state is not None and self.state.failure is None:
            self.state.failed(why)


class TLSFailureMixin:
    """
    Report a connection lost to a failed TLS handshake to the factory's
    L{ConnectionState} (see L{txmsg._tls.describe_tls_failure}) before
    txredisapi turns it into "Lost connection".
    """

    factory: Any

    def connectionLost(self, why: Any) -> None:
        state = getattr(self.factory, "state", None)
        if state is not None:
            message = describe_tls_failure(why, state.url, REDIS_HINTS)
            if message is not None:
                state.failed(message)
        super().connectionLost(why)  # type: ignore[misc]


class CommandProtocol(TLSFailureMixin, txredisapi.RedisProtocol):  # type: ignore[misc,name-defined]
    """
    txredisapi's protocol, with MULTI working when replies are bytes
    (C{charset=None} with hiredis returns C{b"OK"}, which txredisapi rejects).
    """

    def _tx_started(self, response: Any) -> Any:
        if response == b"OK":
            response = "OK"
        return super()._tx_started(response)


class CommandFactory(ObservedFactoryMixin, txredisapi.RedisFactory):  # type: ignore[misc]
    """
    The pooled, reconnecting factory for ordinary commands.
    """

    protocol = CommandProtocol
