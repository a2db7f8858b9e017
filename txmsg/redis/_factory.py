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

    def connectionError(self, why: str) -> None:
        """
        txredisapi gave up on a connection (AUTH or SELECT failed, or the
        connection was lost first): tell the L{ConnectionState}, which
        reports it; txredisapi's own Deferred for it is then handled here,
        so it never logs "Unhandled error in Deferred".
        """
        if self.state is not None:
            self.state.failed(why)
            pending = getattr(self, "deferred", None)
            if pending is not None:
                pending.addErrback(lambda _: None)
        super().connectionError(why)  # type: ignore[misc]

    def delConnection(self, conn: Any) -> None:
        before = self.size
        super().delConnection(conn)  # type: ignore[misc]
        if self.state is not None and before > 0 and self.size == 0:
            self.state.lost()


class TLSFailureMixin:
    """
    Report a connection lost to a failed TLS handshake to the factory's
    L{ConnectionState} (see L{ConnectionState.failed}) before txredisapi
    turns it into "Lost connection".
    """

    factory: Any

    def connectionLost(self, why: Any) -> None:
        state = getattr(self.factory, "state", None)
        if state is not None:
            state.failed(why)
        super().connectionLost(why)  # type: ignore[misc]


class CommandProtocol(TLSFailureMixin, txredisapi.RedisProtocol):
    """
    txredisapi's protocol, with MULTI working when replies are bytes
    (C{charset=None} with hiredis returns C{b"OK"}, which txredisapi rejects).
    """

    def _tx_started(self, response: Any) -> Any:
        if response == b"OK":
            response = "OK"
        return super()._tx_started(response)


class CommandFactory(ObservedFactoryMixin, txredisapi.RedisFactory):
    """
    The pooled, reconnecting factory for ordinary commands.
    """

    protocol = CommandProtocol
