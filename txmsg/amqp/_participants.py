# -*- test-case-name: txmsg.test.test_amqp_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Stopping one participant (publisher, consumer, RPC client) of an
L{txmsg.amqp.connection.AMQPConnection}, bounded by its grace period.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = ["stop_participant"]


async def stop_participant(
    participant: Any, reactor: IReactorTime, close_timeout: float, log: Logger
) -> None:
    """
    Stop C{participant}, waiting at most its C{grace} seconds (plus
    C{close_timeout}) when it has one: a handler that never finishes must
    not keep the connection from stopping.  Failures are logged, never
    raised.
    """
    grace = getattr(participant, "grace", None)
    d = maybeDeferred(participant.stop)
    timer = None
    if grace is not None:
        timer = reactor.callLater(grace + close_timeout, d.cancel)
    try:
        await d
    except CancelledError:
        log.warn(
            "{participant!r} did not stop within {grace}s; stopping without it",
            participant=participant,
            grace=grace,
        )
    except Exception:
        log.failure("Stopping {participant!r} failed", participant=participant)
    finally:
        if timer is not None and timer.active():
            timer.cancel()
