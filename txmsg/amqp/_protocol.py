# -*- test-case-name: txmsg.test.test_amqp_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The pika protocol used by L{txmsg.amqp.connection.AMQPConnection}: a
C{TwistedProtocolConnection} that keeps the real close reason, built lazily
because importing pika's Twisted adapter installs the global reactor.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

_log = Logger()


def describe_reason(reason: Any) -> dict:
    """
    Describe a close reason (exception or L{Failure}) as plain fields.

    @return: C{{"reason": str, "reason_type": "module.Class",
        "reply_code": int | None, "reply_text": str | None}}.
    """
    value = reason.value if isinstance(reason, Failure) else reason
    cls = type(value)
    return {
        "reason": str(value) or cls.__name__,
        "reason_type": f"{cls.__module__}.{cls.__qualname__}",
        "reply_code": getattr(value, "reply_code", None),
        "reply_text": getattr(value, "reply_text", None),
    }


_protocol_class: Any = None


def reason_preserving_protocol() -> type:
    """
    Return (building it on first use) C{ReasonPreservingConnection}: a
    C{TwistedProtocolConnection} that

      - reports the close reason pika recorded (C{ConnectionClosedByBroker(320,
        ...)}, C{ConnectionClosedByClient(200, ...)}, C{ConnectionBlockedTimeout})
        instead of Twisted's C{ConnectionDone} (LIBS.md section 1.2);
      - tells its C{owner} (an L{AMQPConnection}) when it is ready, when it
        is lost, and why an attempt failed before it was ready.
    """
    global _protocol_class
    if _protocol_class is None:
        from pika.adapters.twisted_connection import TwistedProtocolConnection
        from twisted.internet import error

        class ReasonPreservingConnection(TwistedProtocolConnection):
            owner: Any = None

            def connectionReady(self) -> Any:
                if self.owner is not None:
                    try:
                        self.owner._protocol_ready(self)
                    except Exception:
                        _log.failure("AMQP connection setup failed")
                return self

            def connectionLost(self, reason: Any = None) -> None:
                pending = getattr(self._impl, "_error", None)
                if (
                    reason is not None
                    and reason.check(error.ConnectionDone)
                    and pending is not None
                ):
                    reason = Failure(pending)
                super().connectionLost(reason)
                if self.owner is None or reason is None:
                    return
                if self.owner._connection is self:
                    self.owner._protocol_lost(self, reason)
                else:
                    self.owner._attempt_failed(reason)

        _protocol_class = ReasonPreservingConnection
    return _protocol_class


class _Factory:
    """A minimal client factory building owned reason-preserving protocols."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass

    def buildProtocol(self, addr: Any) -> Any:
        owner = self._owner
        proto = reason_preserving_protocol()(
            owner.address.parameters(owner.connection_name),
            custom_reactor=owner._reactor,
        )
        proto.owner = owner
        proto.factory = self
        return proto
